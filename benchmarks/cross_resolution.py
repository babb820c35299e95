"""Cross-resolution distillation on the shared CIFAR-10: a student whose maps are 4×4 learns from the committed CaiT
teacher whose maps are 8×8 (artifacts/cifar10-teacher). Variants, same budget (8 epochs), seeds ``--seeds``:

* ``none`` — no KD, label-smoothed CE only (``distill.mode: none``)
* ``logit_kd`` — logit KD only (``w_fft: 0``)
* ``fourier`` — logit KD + the spectral loss, teacher maps ideally resampled to 4×4 (``spatial_align: fourier``)
* ``interpolate`` — logit KD + the same spectral loss after bilinear resizing (``spatial_align: interpolate``)
* ``fourier_centered`` — as ``fourier``, sampled at the 4×4 cell centres (``spatial_align: fourier_centered``;
  in the cohort from seed 2 on, seeds 0-1 ran the four above)

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
         ("fourier", "none"), ("fourier_centered", "logit_kd"), ("fourier_centered", "fourier"),
         ("fourier_centered", "interpolate")]
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

    def members(self, seed: int) -> list[str]:
        """The students of seed ``seed``: those of its cohort when it has started (seeds 0-1 ran before
        fourier_centered joined the cohort file), else the cohort file's."""
        started = self.runs / f"seed{seed}" / "cohort.yaml"
        return [m["name"] for m in read_yaml(started)["cohort"]] if started.is_file() else members()

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
        for name in self.members(seed):
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


def target_gap(images: int, threads: int = 1) -> dict:
    """What the alignments ask of the student, measured on the teacher's maps at the study's pairs over the first
    ``images`` held-out training images (the validation split, never the test split): per teacher layer, the share
    of each map's spatial (non-mean) energy the 4×4 grid cannot hold (``1 - (64/16)·E_AC(ideal 4×4)/E_AC(8×8)``,
    Parseval with ortho scaling), and how far apart the 4×4 targets are, relative to the ideal target's non-mean
    part (all three keep each map's mean): ``ideal`` (fourier, shared origin), ``centered`` (fourier_centered, cell
    centres) and ``bilinear`` (interpolate; at 8×8 → 4×4 exactly 2×2 average pooling, centred on the cells)."""
    import torch

    from spectralkd.data.datasets import open_rgb
    from spectralkd.data.folders import holdout_split, labelled_split
    from spectralkd.data.transforms import data_config, eval_transform
    from spectralkd.distill.losses import pool_channels, resample_to
    from spectralkd.features.maps import block_maps
    from spectralkd.features.models import create_model

    torch.set_num_threads(threads)
    cfg = read_yaml(ROOT / BASE)
    t, d = cfg["teacher"], cfg["data"]
    teacher = create_model(t["name"], checkpoint=ROOT / t["checkpoint"], model_kwargs=t["kwargs"]).eval()
    items, _, _ = labelled_split(DATA, "train")
    _, held = holdout_split(items, d["holdout"], d["holdout_seed"])
    tf = eval_transform(data_config(input_size=d["input_size"], mean=d["mean"], std=d["std"],
                                    interpolation=d["interpolation"], crop_pct=d["crop_pct"]))
    student_dim = cfg["model"]["kwargs"]["embed_dim"]
    ids = cfg["distill"]["teacher_ids"]
    sums = {i: [0.0] * 5 for i in ids}  # AC energy 8×8, AC energy ideal 4×4, ||bilinear - ideal||², two more
    def ac(z: torch.Tensor) -> torch.Tensor:  # the map about its own spatial mean
        return z - z.mean(dim=(-2, -1), keepdim=True)

    with torch.no_grad():
        for start in range(0, images, 250):
            x = torch.stack([tf(open_rgb(p)) for p, _ in held[start:min(start + 250, images)]])
            for i, m in zip(ids, block_maps(teacher, x, ids)):
                m = pool_channels(m.float(), student_dim)  # the loss compares the teacher pooled to 64 channels
                ideal, bilinear = resample_to(m, (4, 4), "fourier"), resample_to(m, (4, 4), "interpolate")
                centred = resample_to(m, (4, 4), "fourier_centered")
                sums[i][0] += float(ac(m).pow(2).sum())
                sums[i][1] += float(ac(ideal).pow(2).sum())
                sums[i][2] += float((bilinear - ideal).pow(2).sum())
                sums[i][3] += float((centred - ideal).pow(2).sum())
                sums[i][4] += float((bilinear - centred).pow(2).sum())
    layers = [{"teacher_layer": i, "dropped_ac_energy": 1 - (64 / 16) * e4 / e8,
               "bilinear_vs_ideal": (b_i / e4) ** 0.5, "centered_vs_ideal": (c_i / e4) ** 0.5,
               "bilinear_vs_centered": (b_c / e4) ** 0.5} for i, (e8, e4, b_i, c_i, b_c) in sums.items()]
    return {"images": images, "split": f"held-out training images (data.holdout={d['holdout']})", "layers": layers}


def runs_table(result: dict) -> str:
    """Every run: test top-1 (the reported number, after the last epoch) beside its holdout top-1 at the last and
    at the best epoch."""
    lines = ["| variant | seed | test top-1 (%) | holdout top-1, last epoch | best epoch (holdout top-1) |",
             "|---|---|---|---|---|"]
    for r in sorted(result["runs"], key=lambda r: (members().index(r["variant"]), r["seed"])):
        lines.append(f"| {r['variant']} | {r['seed']} | {r['test_top1']:.2f} | {r['last_val_top1']:.2f} "
                     f"(epoch {r['epochs']}) | {r['best_val_epoch']} ({r['best_val_top1']:.2f}) |")
    return "\n".join(lines)


def targets_table(result: dict) -> str:
    t = result.get("targets")
    if not t:
        return ""
    lines = [f"Teacher targets on {t['images']} {t['split']}:", "",
             "| teacher layer | AC energy above the 4×4 band | bilinear vs ideal | centered vs ideal | "
             "bilinear vs centered |", "|---|---|---|---|---|"]
    for r in t["layers"]:
        lines.append(f"| {r['teacher_layer']} | {r['dropped_ac_energy']:.3f} | {r['bilinear_vs_ideal']:.3f} | "
                     f"{r['centered_vs_ideal']:.3f} | {r['bilinear_vs_centered']:.3f} |")
    return "\n".join(lines)


def members() -> list[str]:
    return [m["name"] for m in read_yaml(ROOT / COHORT)["cohort"]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--smoke", action="store_true", help="a few steps per run, into runs/cross-resolution-smoke/")
    ap.add_argument("--report-only", action="store_true", help="train nothing: write the results of finished runs")
    ap.add_argument("--targets", type=int, metavar="N", default=0,
                    help="also measure the two alignments' targets on N held-out training images (target_gap)")
    args = ap.parse_args()
    study = Study(args.smoke)
    if not TEACHER.is_file():
        sys.exit(f"cross_resolution: the committed teacher {TEACHER.relative_to(ROOT)} is missing")
    previous = json.loads(study.results.read_text()) if study.results.is_file() else {}
    commands = previous.get("commands", [])
    for seed in args.seeds:
        if not args.report_only and not all(study.finished(seed, n) for n in study.members(seed)):
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
              "commands": commands, "targets": target_gap(args.targets) if args.targets else previous.get("targets"),
              "written": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
    # two drivers (one per seed, side by side) may have written meanwhile: keep the commands either recorded
    latest = json.loads(study.results.read_text()).get("commands", []) if study.results.is_file() else []
    result["commands"] = [c for c in map(repo_relative, latest) if c not in commands] + commands
    study.results.parent.mkdir(parents=True, exist_ok=True)
    study.results.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {study.results.relative_to(ROOT)}", flush=True)
    print(table(result), flush=True)
    print("\n" + runs_table(result) + "\n\n" + targets_table(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
