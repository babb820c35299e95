"""Robustness of the CIFAR-10 study's students and teacher: `spectralkd robustness` over every run with weights.

For each student's ``best.safetensors`` under ``--runs`` (variants none, logit_kd, spectralkd, feature_mse by default;
the study v2 cohorts of benchmarks/cifar10_kd_v2.py, ``seed<S>/<variant>/``, or the first study's
``<variant>-s<seed>/``) and the committed teacher, run

    spectralkd robustness --checkpoint ... --data <CIFAR-10> --num-images N --attacks fgsm,pgd \
        --eps 1/255,2/255,4/255 --pgd-steps 10 --corruptions common --severities 1-5 --seed 0

into benchmarks/results/robustness/<variant>-s<seed>/ (and .../teacher/); a folder whose robustness.json exists with
the same settings is reused. Then write benchmarks/results/robustness.json:

    {"settings": {...}, "runs": [{"variant", "seed", "clean", "fgsm": {eps: acc}, "pgd": {eps: acc},
     "corruption_mean"}], "paired": {"spectralkd - logit_kd": {metric: {"n", "mean", "ci95", "diffs"}}}}

(paired over the seeds both variants have; 95 % t-interval). Every model sees the same images, PGD starts and
corruption noise (same seed); the corrupted batches are computed once and shared through ``--corruption-cache``. Run from the repository root, in the background:

    nohup .venv/bin/python benchmarks/robustness_study.py > runs/robustness-study.log 2>&1 &
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TEACHER = ROOT / "artifacts" / "cifar10-teacher" / "teacher.safetensors"
VARIANTS = ("none", "logit_kd", "spectralkd", "feature_mse")
EPS = "1/255,2/255,4/255"
PAIRS = (("spectralkd", "logit_kd"), ("logit_kd", "none"), ("spectralkd", "none"), ("feature_mse", "logit_kd"))


def trained_out(run: Path) -> bool:
    """Whether the run in ``run`` has finished its schedule: its log's last record is the config's last epoch (a
    student still training already has ``best.safetensors`` from an earlier epoch; it is not measured yet)."""
    from spectralkd.config import read_yaml
    from spectralkd.runtime.runlog import read_jsonl

    try:
        epochs = int(read_yaml(run / "config.yaml")["epochs"])
    except Exception:
        return False
    log = read_jsonl(run / "log.jsonl")
    return bool(log) and log[-1].get("epoch") == epochs


def discover(runs: Path, variants) -> list[tuple[str, int, Path]]:
    """(variant, seed, weights) for every finished student with ``best.safetensors`` under ``runs``, in either layout: the
    study v2 cohorts ``seed<S>/<variant>/`` (and students trained alone beside them, ``seed<S>-<variant>/``), or the
    first study's ``<variant>-s<seed>/``."""
    found = []
    for weights in sorted(runs.glob("*/best.safetensors")) + sorted(runs.glob("seed*/*/best.safetensors")):
        rel = weights.parent.relative_to(runs).parts
        m = (re.fullmatch(r"seed(\d+)/(.+)", "/".join(rel)) or re.fullmatch(r"seed(\d+)-(.+)", rel[0])
             if rel[0].startswith("seed") else None)
        if m:
            seed, variant = int(m.group(1)), m.group(2)
        elif (m := re.fullmatch(r"(.+)-s(\d+)", rel[0])) and len(rel) == 1:
            variant, seed = m.group(1), int(m.group(2))
        else:
            continue
        if variant in variants and trained_out(weights.parent):
            found.append((variant, seed, weights))
    return sorted(found, key=lambda t: (variants.index(t[0]), t[1]))


def measure(weights: Path, out: Path, args) -> dict:
    cmd = ["robustness", "--checkpoint", str(weights), "--num-images", str(args.num_images), "--attacks", "fgsm,pgd",
           "--eps", EPS, "--pgd-steps", str(args.pgd_steps), "--corruptions", args.corruptions,
           "--severities", "1-5", "--seed", str(args.seed), "--batch-size", str(args.batch_size),
           "--device", args.device, "--out", str(out)]
    if args.data:
        cmd += ["--data", str(args.data)]
    if args.corruption_cache:
        cmd += ["--corruption-cache", str(args.corruption_cache)]
    done = out / "robustness.json"
    if done.is_file():
        r = json.loads(done.read_text())
        same_weights = (ROOT / r.get("checkpoint", "")).resolve() == weights.resolve()
        if (same_weights and r.get("images") == args.num_images and r.get("pgd_steps") == args.pgd_steps
                and r.get("seed") == args.seed and r.get("attacks", {}).get("pgd", {}).keys() == set(EPS.split(","))
                and len(r.get("corruptions", {})) == (15 if args.corruptions == "common" else len(r["corruptions"]))):
            print(f"reuse {done}", flush=True)
            return r
    print(f"$ spectralkd {shlex.join(cmd)}", flush=True)
    start = time.time()
    code = subprocess.call([sys.executable, "-m", "spectralkd", *cmd], cwd=ROOT)
    if code != 0:
        sys.exit(f"robustness_study: command failed with exit {code}")
    print(f"  {time.time() - start:.0f} s", flush=True)
    return json.loads(done.read_text())


def row(variant: str, seed: int | None, r: dict) -> dict:
    return {"variant": variant, "seed": seed, "clean": r["clean"], "fgsm": r["attacks"].get("fgsm", {}),
            "pgd": r["attacks"].get("pgd", {}), "corruption_mean": r["corruption_mean"]}


def metrics(r: dict) -> dict:
    out = {"clean": r["clean"], "corruption_mean": r["corruption_mean"]}
    for a in ("fgsm", "pgd"):
        out.update({f"{a}@{k}": v for k, v in r[a].items()})
    return out


def paired(rows: list[dict]) -> dict:
    from spectralkd.analysis.robustness import paired_summary

    out = {}
    by = {(r["variant"], r["seed"]): metrics(r) for r in rows if r["variant"] != "teacher"}
    for a, b in PAIRS:
        seeds = sorted(s for (v, s) in by if v == a and (b, s) in by)
        if not seeds:
            continue
        res = {}
        for key in by[(a, seeds[0])]:
            diffs = [by[(a, s)][key] - by[(b, s)][key] for s in seeds]
            res[key] = {**paired_summary(diffs), "diffs": diffs}
        out[f"{a} - {b}"] = {"seeds": seeds, **res}
    return out


def tables(result: dict) -> str:
    """The docs tables: every run, then the paired differences (mean, 95 % interval, per-seed differences)."""
    eps = EPS.split(",")
    lines = ["| model | seed | clean | " + " | ".join(f"FGSM {e}" for e in eps) + " | "
             + " | ".join(f"PGD {e}" for e in eps) + " | corruption mean |", "|---|---|" + "---:|" * 8]
    for r in result["runs"]:
        cells = [f"{r['clean']:.1f}", *(f"{r['fgsm'][e]:.1f}" for e in eps), *(f"{r['pgd'][e]:.1f}" for e in eps),
                 f"{r['corruption_mean']:.2f}"]
        lines.append(f"| {r['variant']} | {'—' if r['seed'] is None else r['seed']} | " + " | ".join(cells) + " |")
    keys = ["clean", "fgsm@1/255", "fgsm@2/255", "pgd@1/255", "pgd@2/255", "corruption_mean"]
    lines += ["", "| a − b | n | " + " | ".join(keys) + " |", "|---|---|" + "---:|" * len(keys)]
    sign = lambda v: f"{v:+.2f}".replace("-", "−")  # noqa: E731
    for name, res in result["paired"].items():
        cells = [f"{sign(res[k]['mean'])} [{sign(res[k]['ci95'][0])}, {sign(res[k]['ci95'][1])}] "
                 f"({sum(d < 0 for d in res[k]['diffs'])} of {len(res[k]['diffs'])} < 0)"
                 if res[k]["ci95"][0] is not None else sign(res[k]["mean"]) for k in keys]
        lines.append(f"| {name.replace(' - ', ' − ')} | {len(res['seeds'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "cifar10_kd_v2",
                    help="study runs: seed<S>/<variant>/ and seed<S>-<variant>/ (study v2, the default "
                         "runs/cifar10_kd_v2) or <variant>-s<seed>/ (the first study)")
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS))
    ap.add_argument("--data", help="CIFAR-10 folder or tarball (default: the shared one)")
    ap.add_argument("--num-images", type=int, default=1000)
    ap.add_argument("--pgd-steps", type=int, default=10)
    ap.add_argument("--corruptions", default="common", help="all | common | names (default: common, the 15)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--corruption-cache", default=str(ROOT / "runs" / "robustness-corruption-cache"),
                    help="where corrupted batches are memoised, so the models share one corruption pass "
                         "(default: runs/robustness-corruption-cache; '' for none)")
    ap.add_argument("--no-teacher", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "robustness.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    rows = []
    if not args.no_teacher:
        rows.append(row("teacher", None, measure(TEACHER, RESULTS / "robustness" / "teacher", args)))
    runs = discover(args.runs, list(args.variants))
    if not runs:
        print(f"no student best.safetensors under {args.runs} for {', '.join(args.variants)}", flush=True)
    for variant, seed, weights in runs:
        rows.append(row(variant, seed, measure(weights, RESULTS / "robustness" / f"{variant}-s{seed}", args)))
    settings = {"num_images": args.num_images, "eps": EPS, "pgd_steps": args.pgd_steps, "pgd_alpha": "2.5*eps/steps",
                "corruptions": args.corruptions, "severities": "1-5", "seed": args.seed,
                "runs": str(args.runs.resolve().relative_to(ROOT)) if args.runs.resolve().is_relative_to(ROOT)
                else str(args.runs)}
    result = {"settings": settings, "runs": rows, "paired": paired(rows)}
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out} ({len(rows)} runs)", flush=True)
    print(tables(result), flush=True)
    for name, res in result["paired"].items():
        print(name, {k: (round(v["mean"], 2), [None if c is None else round(c, 2) for c in v["ci95"]])
                     for k, v in res.items() if k != "seeds"}, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
