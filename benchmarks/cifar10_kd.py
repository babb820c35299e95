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
4. ``spectralkd compare`` the teacher with the no-KD and SpectralKD students of the first seed.
5. benchmarks/results/cifar10_kd.json and the runs' configs and logs under benchmarks/results/cifar10_kd/.
"""
from __future__ import annotations

import argparse
import json
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
VARIANTS = ("none", "logit_kd", "spectralkd", "spectralkd_paper_rule", "feature_mse", "spectral_only")
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
        sys.exit(f"cifar10_kd: command failed with exit {code}; see {log}")
    return time.time() - start


def finished(run_dir: Path) -> bool:
    """A run is finished when its log has an epoch equal to its configured epochs."""
    import yaml

    cfg_path, log = run_dir / "config.yaml", run_dir / "log.jsonl"
    if not cfg_path.is_file() or not log.is_file():
        return False
    epochs = yaml.safe_load(cfg_path.read_text())["epochs"]
    done = [json.loads(line).get("epoch", 0) for line in log.read_text().splitlines() if line.strip()]
    return bool(done) and max(done) >= epochs


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


def export_teacher() -> dict:
    from spectralkd.distill.checkpoint import load_weights, save_weights

    state, card = load_weights(TEACHER_RUN / "best.safetensors")
    log = [json.loads(x) for x in (TEACHER_RUN / "log.jsonl").read_text().splitlines() if x.strip()]
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


def teacher_train_seconds() -> float:
    """Training time summed from the teacher's log (used when the teacher was not started by this script)."""
    log = [json.loads(x) for x in (TEACHER_RUN / "log.jsonl").read_text().splitlines() if x.strip()]
    return float(sum(r.get("train_time_s", 0.0) for r in log))


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
    log = [json.loads(x) for x in (run_dir / "log.jsonl").read_text().splitlines() if x.strip()]
    best = max(log, key=lambda r: r["val_top1"])
    return {"best_top1": best["val_top1"], "best_epoch": best["epoch"], "last_top1": log[-1]["val_top1"],
            "epochs": log[-1]["epoch"]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    ap.add_argument("--teacher-only", action="store_true", help="stop after training and exporting the teacher")
    ap.add_argument("--export-teacher", action="store_true",
                    help="only export the teacher's best weights so far (no training), e.g. at the end of a session")
    args = ap.parse_args()
    restore_teacher_run()
    if args.export_teacher:
        card = export_teacher()
        print(f"exported teacher: val top-1 {card['top1']:.2f} (epoch {card['epoch']}; {card['status']})")
        return 0
    RUNS.mkdir(parents=True, exist_ok=True)
    wall = json.loads((RUNS / "wall.json").read_text()) if (RUNS / "wall.json").is_file() else {}

    # 1. teacher
    train_or_resume("train", "configs/cifar10/teacher_cait.yaml", TEACHER_RUN, [], wall, "teacher")
    card = export_teacher()
    print(f"teacher: best val top-1 {card['top1']:.2f} (epoch {card['epoch']})", flush=True)
    if args.teacher_only:
        return 0

    # 2. analysis and pairs
    from spectralkd.analysis.compare import load_analysis
    from spectralkd.analysis.recommend import paper_rule_pairs

    analysis_dir = RUNS / "teacher-analysis"
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
    runs = []
    for seed in args.seeds:
        for variant in args.variants:
            if variant == "spectralkd_paper_rule" and tuple(map(list, paper)) == tuple(map(list, rec)):
                continue
            command, config, sets = variant_sets(variant, rec, paper)
            key = f"{variant}-s{seed}"
            run_dir = RUNS / key
            train_or_resume(command, config, run_dir, [*sets, f"seed={seed}"], wall, key)
            runs.append({"variant": variant, "seed": seed, **summarise(run_dir),
                         "wall_seconds": round(wall.get(key, 0.0), 1), "run": str(run_dir.relative_to(ROOT))})
            dest = RESULTS / "cifar10_kd" / key
            dest.mkdir(parents=True, exist_ok=True)
            for name in ("config.yaml", "log.jsonl"):
                shutil.copy(run_dir / name, dest / name)

    # 4. dynamics
    first = args.seeds[0]
    cmp_dir = RESULTS / "cifar10_kd" / "compare"
    sh(["compare", str(analysis_dir / "analysis.json"), str(RUNS / f"none-s{first}"), str(RUNS / f"spectralkd-s{first}"),
        "--labels", "teacher", "no KD", "SpectralKD", "--num-images", "1000", "--out", str(cmp_dir.relative_to(ROOT)),
        "--no-progress"], RUNS / "compare.log")
    dynamics = json.loads((cmp_dir / "compare.json").read_text())
    for sub in ("analyses",):
        shutil.rmtree(cmp_dir / sub, ignore_errors=True)  # the per-run analyses are reproducible; keep the summary

    # 5. results
    result = {"teacher": {"top1": card["top1"], "best_epoch": card["epoch"], "last_top1": card["last_epoch"]["val_top1"],
                          "epochs": card["last_epoch"]["epoch"], "wall_seconds": round(wall.get("teacher") or teacher_train_seconds(), 1),
                          "weights": str((ARTIFACT / "teacher.safetensors").relative_to(ROOT))},
              "pairs": {"recommended": {"student_ids": rec[0], "teacher_ids": rec[1]},
                        "paper_rule": {"student_ids": paper[0], "teacher_ids": paper[1]}},
              "runs": runs, "dynamics": dynamics,
              "command": "python benchmarks/cifar10_kd.py --seeds " + " ".join(map(str, args.seeds))}
    (RESULTS / "cifar10_kd.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {RESULTS / 'cifar10_kd.json'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
