"""The CPU-scale SpectralKD study on the shared CIFAR-10: teacher, analysis, six student variants, dynamics.

Resumable: every step is skipped when done and resumed (``--resume``) when interrupted, so the study can be
spread over several sessions. Run it in the background from the repository root:

    nohup .venv/bin/python benchmarks/cifar10_kd.py > runs/cifar10-kd.log 2>&1 &

Steps
1. Teacher: ``spectralkd train --config configs/cifar10/teacher_cait.yaml`` → runs/cifar10-teacher-cait; its best
   weights are exported with their model card to artifacts/cifar10-teacher/ (committed, < 20 MB).
2. ``spectralkd analyze`` the teacher (1000 val images) → the recommended pairs for the 6-block student.
3. Students, same budget (configs/cifar10/student_*.yaml), seeds ``--seeds``: none, logit_kd, spectralkd (recommended
   pairs), spectralkd_paper_rule (the paper's first-2 + last-6 rule scaled to 12 ↔ 6, when it differs),
   feature_mse (recommended pairs), spectral_only (α = 0: CE + spectral term).
4. ``spectralkd compare`` the teacher with the no-KD, logit-KD and SpectralKD students of the first seed (or of
   ``--compare-seeds``) whose weights are on this machine.
5. benchmarks/results/cifar10_kd.json and the runs' configs and logs under benchmarks/results/cifar10_kd/; tables
   and the top-1 plot come from benchmarks/cifar10_kd_report.py.

``--study NAME`` keeps another student budget apart (results/NAME.json, results/NAME/, runs/NAME-with-dashes/);
the teacher and its analysis are shared. Finished runs are read from their committed copies in a new checkout, so
seeds or variants can be added in a later session.
"""
from __future__ import annotations

import argparse
import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "runs" / "cifar10-kd"
TEACHER_RUN = ROOT / "runs" / "cifar10-teacher-cait"
ARTIFACT = ROOT / "artifacts" / "cifar10-teacher"
RESULTS = ROOT / "benchmarks" / "results"
STUDY = "cifar10_kd"  # --study: results/<study>.json, results/<study>/, runs/<study with dashes>/
TEACHER_ANALYSIS = RESULTS / "cifar10_kd" / "teacher-analysis"  # the committed teacher's, whatever the study
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10_kd_report import VARIANTS, dynamics_table, plot_curves, summary, table  # noqa: E402
from spectralkd.runtime.runlog import read_jsonl  # noqa: E402
STUDENT_DEPTH = 6


def sh(args: list[str], log: Path) -> float:
    """Run ``python -m spectralkd ARGS`` appending to ``log``; returns wall seconds; exits on failure."""
    cmd = [sys.executable, "-m", "spectralkd", *args]
    print(f"$ spectralkd {shlex.join(args)}", flush=True)
    start = time.time()
    with log.open("a") as fh:
        fh.write(f"\n$ spectralkd {shlex.join(args)}\n")
        fh.flush()
        code = subprocess.call(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT)
    if code != 0:
        sys.exit(f"{Path(sys.argv[0]).stem}: command failed with exit {code}; see {log}")
    return time.time() - start


def finished(run_dir: Path) -> bool:
    """A run is finished when its log has an epoch equal to its configured epochs."""
    import yaml

    cfg_path, log = run_dir / "config.yaml", run_dir / "log.jsonl"
    if not cfg_path.is_file() or not log.is_file():
        return False
    epochs = yaml.safe_load(cfg_path.read_text())["epochs"]
    done = [r.get("epoch", 0) for r in read_jsonl(log)]
    return bool(done) and max(done) >= epochs


def set_study(name: str) -> None:
    global STUDY, RUNS
    STUDY, RUNS = name, ROOT / "runs" / name.replace("_", "-")


def committed(key: str) -> Path:
    """Where a run's config and log are kept in the repository (they outlive runs/, which is not committed)."""
    return RESULTS / STUDY / key


def run_record(key: str) -> Path | None:
    """The finished run's directory: runs/ when it is here, else its committed copy; None when not finished."""
    for d in (RUNS / key, committed(key)):
        if finished(d):
            return d
    return None


def previous_results() -> dict:
    path = RESULTS / f"{STUDY}.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def train_or_resume(command: str, config: str, run_dir: Path, sets: list[str], wall: dict, key: str) -> None:
    log = RUNS / f"{key}.log"
    if finished(run_dir):
        return
    if (run_dir / "last.pt").is_file():
        args = [command, "--resume", str(run_dir.relative_to(ROOT)), "--set", "progress=false"]
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)  # started but no epoch finished: start afresh
        args = [command, "--config", config, "--out", str(run_dir.relative_to(ROOT)), "--set", "progress=false",
                *[x for s in sets for x in ("--set", s)]]
    wall[key] = wall.get(key, 0.0) + sh(args, log)
    (RUNS / "wall.json").write_text(json.dumps(wall, indent=1))


RESUME = ARTIFACT / "resume"
RESUME_FILES = ("config.yaml", "log.jsonl", "last.pt")  # the best weights are the exported teacher.safetensors


def restore_teacher_run() -> None:
    """A new checkout has no runs/: continue the teacher from the resumable state committed by an earlier session."""
    if (TEACHER_RUN / "last.pt").is_file() or not (RESUME / "last.pt").is_file():
        return
    TEACHER_RUN.mkdir(parents=True, exist_ok=True)
    for name in RESUME_FILES:
        shutil.copy(RESUME / name, TEACHER_RUN / name)
    shutil.copy(ARTIFACT / "teacher.safetensors", TEACHER_RUN / "best.safetensors")
    shutil.copy(ARTIFACT / "teacher.safetensors.json", TEACHER_RUN / "best.safetensors.json")
    print(f"restored the unfinished teacher run from {RESUME}", flush=True)


def committed_teacher_card() -> dict | None:
    """The committed teacher's card when its training finished (a new checkout then needs no teacher run)."""
    from spectralkd.runtime.checkpoint import load_weights

    if not (ARTIFACT / "teacher.safetensors").is_file():
        return None
    card = load_weights(ARTIFACT / "teacher.safetensors")[1]
    return card if card.get("status") == "finished" else None


def export_teacher() -> dict:
    from spectralkd.runtime.checkpoint import load_weights, save_weights

    state, card = load_weights(TEACHER_RUN / "best.safetensors")
    log = read_jsonl(TEACHER_RUN / "log.jsonl")
    import yaml

    planned = yaml.safe_load((TEACHER_RUN / "config.yaml").read_text())["epochs"]
    card = {**card, "last_epoch": log[-1], "best_epoch": max(log, key=lambda r: r["val_top1"]),
            "epochs_done": log[-1]["epoch"], "epochs_planned": planned,
            "status": "finished" if log[-1]["epoch"] >= planned else
            f"partial: {log[-1]['epoch']} of {planned} epochs; training continues with --resume",
            "produced_by": "benchmarks/cifar10_kd.py (spectralkd train --config configs/cifar10/teacher_cait.yaml)"}
    ARTIFACT.mkdir(parents=True, exist_ok=True)
    save_weights(ARTIFACT / "teacher.safetensors", state, card)
    shutil.copy(TEACHER_RUN / "log.jsonl", ARTIFACT / "log.jsonl")
    shutil.copy(TEACHER_RUN / "config.yaml", ARTIFACT / "config.yaml")
    if log[-1]["epoch"] < planned:  # unfinished: keep the resumable state (weights-only file, < 20 MB) with it
        RESUME.mkdir(parents=True, exist_ok=True)
        for name in RESUME_FILES:
            shutil.copy(TEACHER_RUN / name, RESUME / name)
    elif RESUME.is_dir():
        shutil.rmtree(RESUME)
    return card


def teacher_train_seconds() -> dict:
    """The teacher's training time from its log, summed over epochs and the median epoch (evaluation excluded;
    the sum spans every session that trained it, the median is what an epoch costs on a quiet machine)."""
    import statistics

    times = [r.get("train_time_s", 0.0) for r in read_jsonl(ARTIFACT / "log.jsonl")]
    return {"train_seconds": round(sum(times), 1), "median_epoch_train_seconds": round(statistics.median(times), 1)}


def variant_sets(variant: str, rec: tuple[list[int], list[int]], paper: tuple[list[int], list[int]]):
    """(command, config, --set overrides) of a student variant."""
    teacher = f"teacher.checkpoint={(ARTIFACT / 'teacher.safetensors').relative_to(ROOT)}"
    pairs = lambda p: [f"distill.student_ids={p[0]}", f"distill.teacher_ids={p[1]}"]  # noqa: E731
    spectral = "configs/cifar10/student_spectralkd.yaml"
    return {
        "none": ("train", "configs/cifar10/student_baseline.yaml", []),
        "logit_kd": ("distill", "configs/cifar10/student_kd.yaml", [teacher]),
        "spectralkd": ("distill", spectral, [teacher, *pairs(rec)]),
        "spectralkd_paper_rule": ("distill", spectral, [teacher, *pairs(paper)]),
        "feature_mse": ("distill", spectral, [teacher, *pairs(rec), "distill.feature_loss=feature_mse"]),
        "spectral_only": ("distill", spectral, [teacher, *pairs(rec), "distill.mode=fft", "distill.alpha=0.0"]),
    }[variant]


def summarise(run_dir: Path) -> dict:
    log = read_jsonl(run_dir / "log.jsonl")
    best = max(log, key=lambda r: r["val_top1"])
    return {"best_top1": best["val_top1"], "best_epoch": best["epoch"], "last_top1": log[-1]["val_top1"],
            "epochs": log[-1]["epoch"]}


def student_budget(run_dir: Path) -> dict:
    """The budget every student ran with, as recorded in a run's config."""
    import yaml

    cfg = yaml.safe_load((run_dir / "config.yaml").read_text())
    return {"epochs": cfg["epochs"], "warmup_epochs": cfg["sched"]["warmup_epochs"],
            "batch_size": cfg["data"]["batch_size"], "precision": cfg["precision"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--student-epochs", type=int, default=None,
                    help="student budget in epochs for every variant (default: the configs' 8)")
    ap.add_argument("--student-warmup-epochs", type=int, default=None,
                    help="student warm-up epochs (default: the configs' 2)")
    ap.add_argument("--report-only", action="store_true",
                    help="train nothing: write the results of the finished runs (e.g. at the end of a session)")
    ap.add_argument("--teacher-only", action="store_true", help="stop after training and exporting the teacher")
    ap.add_argument("--export-teacher", action="store_true",
                    help="only export the teacher's best weights so far (no training), e.g. at the end of a session")
    ap.add_argument("--compare-seeds", type=int, nargs="+", default=None, metavar="SEED",
                    help="seeds whose students are compared with the teacher (default: the first of --seeds)")
    ap.add_argument("--study", default="cifar10_kd", metavar="NAME",
                    help="results name, e.g. cifar10_kd_8ep for another student budget (default: cifar10_kd)")
    args = ap.parse_args()
    if not re.fullmatch(r"[a-z0-9_]+", args.study):
        sys.exit(f"cifar10_kd: --study must be lower-case letters, digits and '_', got {args.study!r}")
    set_study(args.study)
    restore_teacher_run()
    if args.export_teacher:
        card = export_teacher()
        print(f"exported teacher: val top-1 {card['top1']:.2f} (epoch {card['epoch']}; {card['status']})")
        return 0
    RUNS.mkdir(parents=True, exist_ok=True)
    wall = json.loads((RUNS / "wall.json").read_text()) if (RUNS / "wall.json").is_file() else {}

    # 1. teacher (a finished, committed teacher is used as it is when its run is not on this machine)
    card = None if (TEACHER_RUN / "best.safetensors").is_file() else committed_teacher_card()
    teacher_committed = card is not None
    if card is None:
        if not args.report_only:
            train_or_resume("train", "configs/cifar10/teacher_cait.yaml", TEACHER_RUN, [], wall, "teacher")
        card = export_teacher()
    print(f"teacher: best val top-1 {card['top1']:.2f} (epoch {card['epoch']})", flush=True)
    if args.teacher_only:
        return 0

    # 2. analysis and pairs
    from spectralkd.analysis.compare.measures import load_analysis
    from spectralkd.analysis.recommend import paper_rule_pairs

    analysis_dir = RUNS / "teacher-analysis"
    if teacher_committed and not (analysis_dir / "analysis.json").is_file() \
            and (TEACHER_ANALYSIS / "analysis.json").is_file():
        analysis_dir = TEACHER_ANALYSIS  # the committed teacher's analysis, from an earlier session
    if not (analysis_dir / "analysis.json").is_file():
        kw = json.dumps(card["model_kwargs"])
        sh(["analyze", "--model", card["model"], "--model-kwargs", kw, "--checkpoint",
            str((ARTIFACT / "teacher.safetensors").relative_to(ROOT)), "--num-images", "1000", "--input-size", "32",
            "--mean", *map(str, card["data"]["mean"]), "--std", *map(str, card["data"]["std"]), "--crop-pct", "1.0",
            "--student-depth", str(STUDENT_DEPTH), "--out", str(analysis_dir.relative_to(ROOT)), "--no-progress"],
           RUNS / "analysis.log")
    analysis = load_analysis(analysis_dir)
    rec = (analysis["recommended"]["student_ids"], analysis["recommended"]["teacher_ids"])
    paper = paper_rule_pairs(len(analysis["layers"]), STUDENT_DEPTH)
    print(f"recommended pairs {rec}; paper rule {paper}", flush=True)

    # 3. students: seed-major order, so every variant gets a first seed before any gets a second
    budget = [f"epochs={args.student_epochs}"] if args.student_epochs else []
    budget += [f"sched.warmup_epochs={args.student_warmup_epochs}"] if args.student_warmup_epochs is not None else []
    previous = previous_results()
    runs = []
    for seed in args.seeds:
        for variant in args.variants:
            if variant == "spectralkd_paper_rule" and tuple(map(list, paper)) == tuple(map(list, rec)):
                continue
            command, config, sets = variant_sets(variant, rec, paper)
            key = f"{variant}-s{seed}"
            run_dir = RUNS / key
            if not args.report_only and run_record(key) is None:  # finished here or in a committed copy: done
                train_or_resume(command, config, run_dir, [*sets, *budget, f"seed={seed}"], wall, key)
            record = run_record(key)
            if record is None:
                print(f"not finished, left out of the results: {key}", flush=True)
                continue
            seconds = wall.get(key) or next((r["wall_seconds"] for r in previous.get("runs", [])
                                              if (r["variant"], r["seed"]) == (variant, seed)), 0.0)
            runs.append({"variant": variant, "seed": seed, **summarise(record),
                         "wall_seconds": round(seconds, 1), "run": str(run_dir.relative_to(ROOT))})
            if record == run_dir:
                dest = committed(key)
                dest.mkdir(parents=True, exist_ok=True)
                for name in ("config.yaml", "log.jsonl"):
                    shutil.copy(run_dir / name, dest / name)

    # 4. dynamics: the teacher against each compared seed's no-KD, logit-KD and SpectralKD students
    first = args.seeds[0]
    by_seed = previous.get("dynamics_by_seed") or ({str(first): previous["dynamics"]} if previous.get("dynamics") else {})
    for seed in args.compare_seeds or [first]:
        students = [(label, RUNS / f"{v}-s{seed}") for label, v in
                    (("no KD", "none"), ("logit KD", "logit_kd"), ("SpectralKD", "spectralkd"))]
        students = [(label, d) for label, d in students if finished(d)]
        if not students or not all((d / "best.safetensors").is_file() for _, d in students):
            continue  # the students' weights are not on this machine: an earlier comparison is kept
        cmp_dir = RESULTS / STUDY / ("compare" if seed == first else f"compare-s{seed}")
        sh(["compare", str(analysis_dir / "analysis.json"), *[str(d) for _, d in students],
            "--labels", "teacher", *[label for label, _ in students], "--num-images", "1000",
            "--out", str(cmp_dir.relative_to(ROOT)), "--no-progress"], RUNS / "compare.log")
        by_seed[str(seed)] = json.loads((cmp_dir / "compare.json").read_text())
        for f in (cmp_dir / "analyses").rglob("*"):  # keep each student's analysis.json (plots can be redrawn)
            if f.is_file() and f.name != "analysis.json":
                f.unlink()
    dynamics = by_seed.get(str(first))
    if analysis_dir != TEACHER_ANALYSIS:
        publish_teacher_analysis(analysis_dir)

    # 5. results
    result = {"teacher": {"top1": card["top1"], "best_epoch": card["epoch"], "last_top1": card["last_epoch"]["val_top1"],
                          "epochs": card["last_epoch"]["epoch"], **teacher_train_seconds(),
                          "weights": str((ARTIFACT / "teacher.safetensors").relative_to(ROOT))},
              "pairs": {"recommended": {"student_ids": rec[0], "teacher_ids": rec[1]},
                        "paper_rule": {"student_ids": paper[0], "teacher_ids": paper[1]}},
              "student_budget": student_budget(run_record(f"{runs[0]['variant']}-s{runs[0]['seed']}")) if runs else None,
              "runs": runs, "summary": summary(runs), "dynamics": dynamics, "dynamics_by_seed": by_seed,
              "commands": commands(previous)}
    path = RESULTS / f"{STUDY}.json"
    kept = {k: v for k, v in (json.loads(path.read_text()) if path.is_file() else {}).items() if k not in result}
    path.write_text(json.dumps({**result, **kept}, indent=1) + "\n")  # keys of cifar10_kd_v2.py are kept
    if runs:
        plot_curves(runs, lambda r: run_record(f"{r['variant']}-s{r['seed']}") / "log.jsonl", card["top1"],
                    ROOT / "docs" / "assets" / f"{STUDY}_top1.png")
    print(f"wrote {RESULTS / f'{STUDY}.json'}", flush=True)
    print(table(result["summary"]), flush=True)
    for seed, dyn in sorted(by_seed.items()):
        print(f"dynamics, seed {seed}:\n{dynamics_table(dyn)}", flush=True)
    return 0


def commands(previous: dict) -> list[str]:
    """The driver commands that produced the results so far (sessions add seeds or variants), this one last;
    a --report-only command trains nothing and is not added."""
    this = "python benchmarks/cifar10_kd.py " + shlex.join(sys.argv[1:])
    before = previous.get("commands") or ([previous["command"]] if previous.get("command") else [])
    if "--report-only" in sys.argv[1:] and before:
        return before
    return [c for c in before if c != this] + [this]


def publish_teacher_analysis(analysis_dir: Path) -> None:
    """The teacher analysis's numbers to benchmarks/results, its plots to docs/assets (shown in the README)."""
    dest = TEACHER_ANALYSIS
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("analysis.json", "details.json", "layers.csv"):
        shutil.copy(analysis_dir / name, dest / name)
    for name in ("intensity", "entropy", "channel_spectra", "spatial_spectra"):
        shutil.copy(analysis_dir / f"{name}.png", ROOT / "docs" / "assets" / f"teacher_{name}.png")


if __name__ == "__main__":
    sys.exit(main())
