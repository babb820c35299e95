"""The CIFAR-10 study, protocol v2: a held-out validation split, the test split evaluated once, paired seeds.

Protocol. 5,000 class-balanced images held out of the 50,000 training images (``data.holdout=5000``,
``data.holdout_seed=0``) are the validation split: they choose epochs (best = highest holdout top-1) and are the
images the teacher is analysed on for the layer pairs. Students train on the other 45,000; the test split (the
official 10,000) is evaluated once per run, after its last epoch, with the weights the holdout chose at that epoch
(``test_top1`` of the last epoch is the number reported). Same student, teacher (artifacts/cifar10-teacher), budget
(3 epochs) and recipe as the first study (configs/cifar10/study_v2_base.yaml).

Design. Every seed is one cohort (``spectralkd distill --cohort``): all variants of a seed see identical batches
and one teacher pass, so differences between variants of a seed are paired. Seeds 0-2 train all seven variants
(configs/cifar10/cohorts/study_v2.yaml), seeds 3-4 the three main ones (cohorts/study_v2_core.yaml).
Every cohort also holds ``none``, the no-KD control (distill.mode none, CE only) on the same batches; seed 0's cohort
was started before it was added, so its ``none`` is the same student trained alone (``spectralkd train``), which
trains exactly like a cohort member (tests/test_cohort.py).

Resumable: a cohort folder under runs/cifar10_kd_v2/ is continued with --resume; finished students' configs and
logs are copied to benchmarks/results/cifar10_kd_v2/seed<S>/<variant>/ and the report is rebuilt from those copies,
so a later session trains only what is missing.

    python benchmarks/cifar10_kd_v2.py                 # train what is missing (all seeds), then report
    python benchmarks/cifar10_kd_v2.py --seeds 0 1     # only these seeds
    python benchmarks/cifar10_kd_v2.py --report-only   # rebuild the JSON and tables from the committed logs
    python benchmarks/cifar10_kd_v2.py --seeds 3 --threads 1 &  python benchmarks/cifar10_kd_v2.py --seeds 4 --threads 1
                                                       # two seeds side by side, one core each
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from spectralkd.config import read_yaml  # noqa: E402
from spectralkd.runtime.runlog import read_jsonl  # noqa: E402

RUNS = ROOT / "runs" / "cifar10_kd_v2"
RESULTS = ROOT / "benchmarks" / "results"
STUDY = RESULTS / "cifar10_kd_v2"
BASE = ROOT / "configs" / "cifar10" / "study_v2_base.yaml"
COHORTS = {"full": ROOT / "configs" / "cifar10" / "cohorts" / "study_v2.yaml",
           "core": ROOT / "configs" / "cifar10" / "cohorts" / "study_v2_core.yaml"}
SEEDS = {0: "full", 1: "full", 2: "full", 3: "core", 4: "core"}
DATA = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
PAIRS = [("spectralkd", "logit_kd"), ("logit_kd", "none"), ("spectralkd", "none"), ("feature_mse", "none"), ("feature_mse", "spectralkd"), ("feature_mse_matched", "spectralkd"),
         ("feature_mse", "logit_kd"), ("feature_mse_matched", "logit_kd"), ("magnitude", "spectralkd"),
         ("magnitude", "logit_kd"), ("band_low", "spectralkd"), ("band_high", "spectralkd"),
         ("band_low", "band_high")]
# two-sided 95 % quantiles of Student's t by degrees of freedom (standard tables)
T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def members(seed: int) -> list[str]:
    return [m["name"] for m in read_yaml(COHORTS[SEEDS[seed]])["cohort"]]


def finished(seed: int, name: str) -> Path | None:
    """The committed copy of a finished student (config.yaml + log.jsonl with the test evaluation), or None."""
    folder = STUDY / f"seed{seed}" / name
    log = read_jsonl(folder / "log.jsonl")
    return folder if log and "test_top1" in log[-1] else None


def train_seed(seed: int, threads: int | None = None) -> None:
    """Train (or resume) this seed's cohort; ``threads`` sets ``threads`` of a new cohort (None: torch's default)."""
    cohort = RUNS / f"seed{seed}"
    cmd = [sys.executable, "-m", "spectralkd", "distill"]
    if (cohort / "cohort.yaml").is_file():
        cmd += ["--resume", str(cohort.relative_to(ROOT))]
    else:
        cmd += ["--config", str(BASE.relative_to(ROOT)), "--cohort", str(COHORTS[SEEDS[seed]].relative_to(ROOT)),
                "--data", str(DATA), "--out", str(cohort.relative_to(ROOT)), "--set", f"seed={seed}"]
        if threads is not None:
            cmd += ["--set", f"threads={threads}"]
    print(f"== seed {seed}: {' '.join(cmd[1:])}", flush=True)
    RUNS.mkdir(parents=True, exist_ok=True)
    with open(RUNS / f"seed{seed}.log", "a") as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    for name in started_members(seed):
        src, dst = cohort / name, STUDY / f"seed{seed}" / name
        dst.mkdir(parents=True, exist_ok=True)
        for f in ("config.yaml", "log.jsonl", "dynamics.jsonl"):
            if (src / f).is_file():
                shutil.copy2(src / f, dst / f)
    shutil.copy2(RUNS / f"seed{seed}.log", STUDY / f"seed{seed}" / "train.log")


def train_missing_solo(seed: int, name: str) -> None:
    """A member added to the cohort file after this seed's cohort started (only ``none``, the no-KD control): the
    same student trained alone with ``spectralkd train`` (the base without its teacher), which trains exactly like a
    cohort member with the same seed."""
    if name != "none":
        raise SystemExit(f"seed {seed}: cohort member {name} is missing from the started cohort; only 'none' can be "
                         "trained alone afterwards")
    run = RUNS / f"seed{seed}-{name}"
    cmd = [sys.executable, "-m", "spectralkd", "train"]
    if (run / "last.pt").is_file():
        cmd += ["--resume", str(run.relative_to(ROOT))]
    else:
        cmd += ["--config", str(BASE.relative_to(ROOT)), "--data", str(DATA), "--out", str(run.relative_to(ROOT)),
                "--set", f"seed={seed}", "--set", "teacher.name=null", "--set", "teacher.checkpoint=null",
                "--set", "distill.mode=none"]
    print(f"== seed {seed} {name} (alone): {' '.join(cmd[1:])}", flush=True)
    with open(RUNS / f"seed{seed}-{name}.log", "a") as log:
        subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, check=True)
    dst = STUDY / f"seed{seed}" / name
    dst.mkdir(parents=True, exist_ok=True)
    for f in ("config.yaml", "log.jsonl", "dynamics.jsonl"):
        if (run / f).is_file():
            shutil.copy2(run / f, dst / f)
    shutil.copy2(RUNS / f"seed{seed}-{name}.log", dst / "train.log")


def started_members(seed: int) -> list[str]:
    """The members of this seed's cohort as it was started (its saved cohort.yaml), else the cohort file's."""
    saved = RUNS / f"seed{seed}" / "cohort.yaml"
    return [m["name"] for m in read_yaml(saved)["cohort"]] if saved.is_file() else members(seed)


def run_row(seed: int, name: str, folder: Path) -> dict:
    log = read_jsonl(folder / "log.jsonl")
    best = max(log, key=lambda r: r["val_top1"])
    last = log[-1]
    return {"variant": name, "seed": seed, "test_top1": last["test_top1"], "test_top5": last["test_top5"],
            "test_epoch": last["epoch"], "last_val_top1": last["val_top1"], "best_val_top1": best["val_top1"],
            "best_val_epoch": best["epoch"], "epochs": last["epoch"],
            "train_minutes": round(sum(r["train_time_s"] for r in log) / 60, 1),
            "config": str((folder / "config.yaml").relative_to(ROOT)), "log": str((folder / "log.jsonl").relative_to(ROOT))}


def paired(rows: list[dict], a: str, b: str) -> dict | None:
    """Mean of the per-seed differences a − b (test top-1) with a 95 % t-interval."""
    by = {(r["variant"], r["seed"]): r["test_top1"] for r in rows}
    seeds = [s for s in sorted({r["seed"] for r in rows}) if (a, s) in by and (b, s) in by]
    diffs = [by[(a, s)] - by[(b, s)] for s in seeds]
    if len(diffs) < 2:
        return None
    mean, sd = statistics.fmean(diffs), statistics.stdev(diffs)
    half = T975[len(diffs) - 1] * sd / len(diffs) ** 0.5
    return {"a": a, "b": b, "n": len(diffs), "seeds": seeds, "mean": round(mean, 3), "sd": round(sd, 3),
            "ci95": [round(mean - half, 3), round(mean + half, 3)], "diffs": [round(d, 3) for d in diffs],
            "a_wins": sum(d > 0 for d in diffs)}


def summarise_variants(rows: list[dict]) -> list[dict]:
    """Per variant, in first-seen order: n, mean and sd of test top-1 over seeds, and the per-seed values."""
    summary = []
    for v in dict.fromkeys(r["variant"] for r in rows):
        vals = [r["test_top1"] for r in rows if r["variant"] == v]
        summary.append({"variant": v, "n": len(vals), "test_top1_mean": round(statistics.fmean(vals), 3),
                        "test_top1_sd": round(statistics.stdev(vals), 3) if len(vals) > 1 else None,
                        "values": vals})
    return summary


def report(rows: list[dict]) -> dict:
    summary = summarise_variants(rows)
    base = read_yaml(BASE)
    return {"protocol": {"selection": "holdout", "holdout_images": base["data"]["holdout"], "test": "test",
                         "reported": "test_top1 of the last epoch (weights chosen by holdout top-1 at that epoch)",
                         "holdout_seed": base["data"]["holdout_seed"]},
            "runs": rows, "summary": summary,
            "paired": [p for a, b in PAIRS if (p := paired(rows, a, b)) is not None]}


def table(result: dict) -> str:
    lines = ["| variant | seeds | test top-1 (%) mean ± sd | per seed |", "|---|---|---|---|"]
    for s in result["summary"]:
        sd = f" ± {s['test_top1_sd']:.2f}" if s["test_top1_sd"] is not None else ""
        lines.append(f"| {s['variant']} | {s['n']} | {s['test_top1_mean']:.2f}{sd} | "
                     f"{', '.join(f'{v:.2f}' for v in s['values'])} |")
    lines += ["", "| a − b | n | mean (pp) | 95 % CI | a better in |", "|---|---|---|---|---|"]
    for p in result["paired"]:
        lines.append(f"| {p['a']} − {p['b']} | {p['n']} | {p['mean']:+.2f} | [{p['ci95'][0]:+.2f}, "
                     f"{p['ci95'][1]:+.2f}] | {p['a_wins']} of {p['n']} |")
    return "\n".join(lines)


def plot_paired(result: dict, path: Path) -> None:
    """Per-seed paired differences (dots, one colour per seed) with the mean and its 95 % t-interval (bar)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = result["paired"]
    if not pairs:
        return
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(pairs) + 1.2))
    colours = plt.get_cmap("tab10")
    for i, p in enumerate(pairs):
        y = len(pairs) - 1 - i
        ax.plot(p["ci95"], [y, y], color="black", lw=2, solid_capstyle="butt")
        ax.plot([p["mean"]], [y], "|", color="black", ms=14, mew=2)
        for s, d in zip(p["seeds"], p["diffs"]):
            ax.plot([d], [y + 0.18], "o", ms=5, color=colours(s % 10), label=f"seed {s}" if i == 0 else None)
    ax.axvline(0, color="grey", lw=0.8, ls="--")
    ax.set_yticks(range(len(pairs)), [f"{p['a']} − {p['b']} (n={p['n']})" for p in reversed(pairs)], fontsize=8)
    ax.set_xlabel("test top-1 difference (percentage points); bar: mean and 95 % t-interval")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("CIFAR-10 study v2: paired differences by seed", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=sorted(SEEDS))
    ap.add_argument("--report-only", action="store_true", help="no training: rebuild from the committed logs")
    ap.add_argument("--threads", type=int, help="CPU threads of a new cohort (default: torch's; 1 when two seeds "
                    "train side by side, one driver per seed)")
    args = ap.parse_args()
    if not args.report_only:
        for seed in args.seeds:
            if not all(finished(seed, name) for name in started_members(seed)):
                train_seed(seed, args.threads)
            for name in members(seed):
                if finished(seed, name) is None and name not in started_members(seed):
                    train_missing_solo(seed, name)
    rows = [run_row(seed, name, folder) for seed in sorted(SEEDS) for name in members(seed)
            if (folder := finished(seed, name)) is not None]
    result = report(rows)
    path = RESULTS / "cifar10_kd.json"
    protocol = {**result["protocol"], "applies_to": "runs_v2, summary_v2 and paired; 'runs' and 'summary' are the "
                "first study, whose test split also chose epochs and layer pairs"}
    merged = {**json.loads(path.read_text()), "protocol": protocol, "runs_v2": result["runs"],
              "summary_v2": result["summary"], "paired": result["paired"]}
    path.write_text(json.dumps(merged, indent=1) + "\n")
    plot_paired(result, STUDY / "paired.png")
    print(table(result))


if __name__ == "__main__":
    main()
