"""Cross-resolution distillation on the shared CIFAR-10: a student whose maps are 4×4 learns from the committed CaiT
teacher whose maps are 8×8 (artifacts/cifar10-teacher). Variants, same budget (8 epochs), seeds ``--seeds``:

* ``none`` — no KD, label-smoothed CE only (``distill.mode: none``)
* ``logit_kd`` — logit KD only (``w_fft: 0``)
* ``fourier`` — logit KD + the spectral loss, teacher maps ideally resampled to 4×4 (``spatial_align: fourier``)
* ``interpolate`` — logit KD + the same spectral loss after bilinear resizing (``spatial_align: interpolate``)

Protocol (as the CIFAR-10 study v2): 5,000 class-balanced training images are held out as the validation split
(``data.holdout``) and choose the best epoch; the test split is evaluated once, after the last epoch, and its
``test_top1`` is the number reported. Design: the four variants of a seed are one cohort (``spectralkd distill
--cohort configs/cifar10/cohorts/xres.yaml`` on the base configs/cifar10/xres_student_fourier.yaml), so they see
identical batches and one teacher pass, and the per-seed differences are paired.

Resumable: a cohort folder under runs/cross-resolution/ is continued with ``--resume``; finished students' configs and
logs are copied to benchmarks/results/cross_resolution/seed<S>/<variant>/ and the results are rebuilt from those
copies. Run it in the background from the repository root:

    nohup .venv/bin/python benchmarks/cross_resolution.py --seeds 0 1 > runs/cross-resolution.log 2>&1 &

Writes benchmarks/results/cross_resolution.json: ``{"protocol", "runs": [{"variant", "seed", "test_top1", ...}],
"summary", "paired", "commands"}``. ``--smoke`` checks the machinery in a few steps (runs/cross-resolution-smoke/,
nothing under benchmarks/results is written). ``--report-only`` trains nothing.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "src"))
from cifar10_kd_v2 import paired, run_row, summarise_variants, table  # noqa: E402
from spectralkd.config import read_yaml  # noqa: E402
from spectralkd.runtime.runlog import read_jsonl  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
TEACHER = ROOT / "artifacts" / "cifar10-teacher" / "teacher.safetensors"
BASE = "configs/cifar10/xres_student_fourier.yaml"
COHORT = "configs/cifar10/cohorts/xres.yaml"
DATA = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
PAIRS = [("fourier", "logit_kd"), ("interpolate", "logit_kd"), ("fourier", "interpolate"), ("logit_kd", "none"),
         ("fourier", "none")]
SMOKE = ["epochs=1", "max_steps_per_epoch=3", "max_val_batches=1", "sched.warmup_epochs=0", "data.num_workers=0",
         "data.batch_size=16", "data.eval_batch_size=50", "data.holdout=100"]


class Study:
    def __init__(self, smoke: bool):
        self.smoke = smoke
        self.runs = ROOT / "runs" / ("cross-resolution-smoke" if smoke else "cross-resolution")
        self.committed = self.runs / "committed" if smoke else RESULTS / "cross_resolution"
        self.results = (self.runs if smoke else RESULTS) / "cross_resolution.json"

    def finished(self, seed: int, name: str) -> Path | None:
        """The copy of a finished student (config.yaml + log.jsonl ending with the test evaluation), or None."""
        folder = self.committed / f"seed{seed}" / name
        log = read_jsonl(folder / "log.jsonl")
        return folder if log and "test_top1" in log[-1] else None

    def command(self, seed: int, budget: list[str]) -> list[str]:
        cohort = self.runs / f"seed{seed}"
        if (cohort / "cohort.yaml").is_file():
            return ["distill", "--resume", str(cohort.relative_to(ROOT)), "--set", "progress=false"]
        data = ["--data", str(DATA)] if DATA.exists() else []
        return ["distill", "--config", BASE, "--cohort", COHORT, *data, "--out", str(cohort.relative_to(ROOT)),
                *[x for s in [f"seed={seed}", "threads=1", "progress=false", *budget] for x in ("--set", s)]]

    def train_seed(self, seed: int, budget: list[str]) -> str:
        args = self.command(seed, budget)
        print(f"== seed {seed}: spectralkd {shlex.join(args)}", flush=True)
        self.runs.mkdir(parents=True, exist_ok=True)
        with open(self.runs / f"seed{seed}.log", "a") as log:
            subprocess.run([sys.executable, "-m", "spectralkd", *args], cwd=ROOT, stdout=log,
                           stderr=subprocess.STDOUT, check=True)
        for name in members():
            src, dst = self.runs / f"seed{seed}" / name, self.committed / f"seed{seed}" / name
            dst.mkdir(parents=True, exist_ok=True)
            for f in ("config.yaml", "log.jsonl"):
                shutil.copy2(src / f, dst / f)
        shutil.copy2(self.runs / f"seed{seed}.log", self.committed / f"seed{seed}" / "train.log")
        return "spectralkd " + shlex.join(args)


def repo_relative(text: str) -> str:
    """``text`` with this checkout's absolute paths written as the repository names them (the shared data as
    ``../shared/...``), so committed logs and commands name no machine's folders."""
    return text.replace(str(ROOT) + "/", "").replace(str(ROOT.parent / "shared"), "../shared")


def make_portable(folder: Path) -> None:
    for f in folder.rglob("*"):
        if f.is_file() and f.suffix in (".yaml", ".jsonl", ".log", ".json"):
            text = f.read_text()
            if (new := repo_relative(text)) != text:
                f.write_text(new)


def members() -> list[str]:
    return [m["name"] for m in read_yaml(ROOT / COHORT)["cohort"]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--smoke", action="store_true", help="a few steps per run, into runs/cross-resolution-smoke/")
    ap.add_argument("--report-only", action="store_true", help="train nothing: write the results of finished runs")
    args = ap.parse_args()
    study = Study(args.smoke)
    if not TEACHER.is_file():
        sys.exit(f"cross_resolution: the committed teacher {TEACHER.relative_to(ROOT)} is missing")
    previous = json.loads(study.results.read_text()) if study.results.is_file() else {}
    commands = previous.get("commands", [])
    for seed in args.seeds:
        if not args.report_only and not all(study.finished(seed, n) for n in members()):
            command = study.train_seed(seed, SMOKE if args.smoke else [])
            commands = [c for c in commands if c != command] + [command]
    if study.committed.is_dir():
        make_portable(study.committed)
    commands = [repo_relative(c) for c in commands]
    seeds = sorted({int(p.name[4:]) for p in study.committed.glob("seed*") if p.name[4:].isdigit()})
    rows = [run_row(seed, name, folder) for seed in seeds for name in members()
            if (folder := study.finished(seed, name)) is not None]
    base = read_yaml(ROOT / BASE)
    result = {"protocol": {"selection": "holdout", "holdout_images": base["data"]["holdout"], "test": "test",
                           "reported": "test_top1 of the last epoch", "holdout_seed": base["data"]["holdout_seed"],
                           "design": "one cohort per seed (identical batches); paired differences by seed"},
              "teacher": str(TEACHER.relative_to(ROOT)), "base": BASE, "cohort": COHORT, "runs": rows,
              "summary": summarise_variants(rows), "paired": [p for a, b in PAIRS if (p := paired(rows, a, b))],
              "commands": commands, "written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    # two drivers (one per seed, side by side) may have written meanwhile: keep the commands either recorded
    latest = json.loads(study.results.read_text()).get("commands", []) if study.results.is_file() else []
    result["commands"] = [c for c in map(repo_relative, latest) if c not in commands] + commands
    study.results.parent.mkdir(parents=True, exist_ok=True)
    study.results.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {study.results.relative_to(ROOT)}", flush=True)
    print(table(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
