"""Cross-resolution distillation on the shared CIFAR-10: a student whose maps are 4×4 learns from the committed CaiT
teacher whose maps are 8×8 (artifacts/cifar10-teacher). Variants, same budget, seeds ``--seeds``:

* ``none`` — no KD (configs/cifar10/xres_student_baseline.yaml, ``spectralkd train``)
* ``logit_kd`` — logit KD only (xres_student_kd.yaml)
* ``fourier`` — logit KD + the spectral loss, teacher maps ideally resampled to 4×4 (xres_student_fourier.yaml,
  ``distill.spatial_align: fourier``)
* ``interpolate`` — logit KD + the same spectral loss after bilinear resizing (xres_student_interpolate.yaml)

Resumable: a finished run (its log reaches the configured epochs, here or in its committed copy under
benchmarks/results/cross_resolution/) is skipped, an interrupted one continues with ``--resume``. Run it in the
background from the repository root:

    nohup .venv/bin/python benchmarks/cross_resolution.py --seeds 0 1 > runs/cross-resolution.log 2>&1 &

Writes benchmarks/results/cross_resolution.json: ``{"runs": [{"variant", "seed", "test_top1", "best_top1",
"best_epoch", "epochs", "config", "command", ...}], "summary": [...], "commands": [...]}``. ``test_top1`` is the
final model's top-1 on the CIFAR-10 test set (the data's val/ split), ``best_top1`` the best epoch's (selected on that
same set, so an optimistic number). ``--smoke`` checks the machinery in a few steps (runs/cross-resolution-smoke/,
nothing under benchmarks/results is written).
"""
from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from cifar10_kd import finished, sh  # noqa: E402
from cifar10_kd_report import summary as report_summary  # noqa: E402
from spectralkd.runtime.runlog import read_jsonl  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TEACHER = ROOT / "artifacts" / "cifar10-teacher" / "teacher.safetensors"
VARIANTS = {  # variant: (command, config)
    "none": ("train", "configs/cifar10/xres_student_baseline.yaml"),
    "logit_kd": ("distill", "configs/cifar10/xres_student_kd.yaml"),
    "fourier": ("distill", "configs/cifar10/xres_student_fourier.yaml"),
    "interpolate": ("distill", "configs/cifar10/xres_student_interpolate.yaml"),
}
SMOKE = ["epochs=1", "max_steps_per_epoch=3", "max_val_batches=1", "sched.warmup_epochs=0", "data.num_workers=0",
         "data.batch_size=16", "data.eval_batch_size=50"]


class Study:
    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.runs = ROOT / "runs" / ("cross-resolution-smoke" if smoke else "cross-resolution")
        self.committed = None if smoke else RESULTS / "cross_resolution"
        self.results = (self.runs if smoke else RESULTS) / "cross_resolution.json"

    def record(self, key: str) -> Path | None:
        """The finished run: runs/ when it is here, else its committed copy; None when not finished."""
        for d in (self.runs / key, self.committed / key if self.committed else None):
            if d is not None and finished(d):
                return d
        return None


def start_args(command: str, config: str, run_dir: Path, sets: list[str]) -> list[str]:
    return [command, "--config", config, "--out", str(run_dir.relative_to(ROOT)), "--set", "progress=false",
            *[x for s in sets for x in ("--set", s)]]


def train_or_resume(study: Study, key: str, args: list[str], wall: dict) -> None:
    run_dir = study.runs / key
    if (run_dir / "last.pt").is_file():
        args = [args[0], "--resume", str(run_dir.relative_to(ROOT)), "--set", "progress=false"]
    elif run_dir.exists():
        shutil.rmtree(run_dir)  # started but no epoch finished: start afresh
    wall[key] = wall.get(key, 0.0) + sh(args, study.runs / f"{key}.log")
    (study.runs / "wall.json").write_text(json.dumps(wall, indent=1))


def summarise(run_dir: Path) -> dict:
    log = read_jsonl(run_dir / "log.jsonl")
    best = max(log, key=lambda r: r["val_top1"])
    return {"test_top1": log[-1]["val_top1"], "best_top1": best["val_top1"], "best_epoch": best["epoch"],
            "epochs": log[-1]["epoch"]}


def summary(runs: list[dict]) -> list[dict]:
    return report_summary(runs, VARIANTS, keys=("test_top1", "best_top1"), wall=False)


def table(rows: list[dict]) -> str:
    fmt = lambda a: f"{a['mean']:.2f} ± {a['std']:.2f}" if a["std"] is not None else f"{a['mean']:.2f}"  # noqa: E731
    lines = ["| variant | seeds | test top-1 (%) | best-epoch top-1 (%) | per seed (test) |", "|---|---|---|---|---|"]
    for r in rows:
        per = ", ".join(f"{v:.2f}" for v in r["test_top1"]["values"])
        lines.append(f"| {r['variant']} | {len(r['seeds'])} | {fmt(r['test_top1'])} | {fmt(r['best_top1'])} | {per} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--epochs", type=int, default=None, help="budget of every variant (default: the configs' 8)")
    ap.add_argument("--smoke", action="store_true", help="a few steps per run, into runs/cross-resolution-smoke/")
    ap.add_argument("--report-only", action="store_true", help="train nothing: write the results of finished runs")
    args = ap.parse_args()
    study = Study(args.smoke)
    if not TEACHER.is_file():
        sys.exit(f"cross_resolution: the committed teacher {TEACHER.relative_to(ROOT)} is missing")
    study.runs.mkdir(parents=True, exist_ok=True)
    wall_path = study.runs / "wall.json"
    wall = json.loads(wall_path.read_text()) if wall_path.is_file() else {}
    previous = json.loads(study.results.read_text()) if study.results.is_file() else {}
    budget = (SMOKE if args.smoke else []) + ([f"epochs={args.epochs}"] if args.epochs else [])
    runs = []
    for seed in args.seeds:  # seed-major: every variant gets a first seed before any gets a second
        for variant in args.variants:
            command, config = VARIANTS[variant]
            key = f"{variant}-s{seed}"
            launch = start_args(command, config, study.runs / key, [*budget, f"seed={seed}"])
            if not args.report_only and study.record(key) is None:
                train_or_resume(study, key, launch, wall)
            record = study.record(key)
            if record is None:
                print(f"not finished, left out of the results: {key}", flush=True)
                continue
            seconds = wall.get(key) or next((r.get("wall_seconds", 0.0) for r in previous.get("runs", [])
                                              if (r["variant"], r["seed"]) == (variant, seed)), 0.0)
            runs.append({"variant": variant, "seed": seed, **summarise(record), "config": config,
                         "command": "spectralkd " + shlex.join(launch), "wall_seconds": round(seconds, 1),
                         "run": str((study.runs / key).relative_to(ROOT))})
            if study.committed is not None and record == study.runs / key:
                dest = study.committed / key
                dest.mkdir(parents=True, exist_ok=True)
                for name in ("config.yaml", "log.jsonl"):
                    shutil.copy(record / name, dest / name)
    this = "python benchmarks/cross_resolution.py " + shlex.join(sys.argv[1:])
    before = previous.get("commands", [])
    commands = before if "--report-only" in sys.argv[1:] and before else [c for c in before if c != this] + [this]
    result = {"teacher": str(TEACHER.relative_to(ROOT)), "runs": runs, "summary": summary(runs), "commands": commands,
              "written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    study.results.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {study.results.relative_to(ROOT)}", flush=True)
    print(table(result["summary"]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
