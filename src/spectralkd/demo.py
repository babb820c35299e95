"""`spectralkd demo`: the whole SpectralKD loop on an embedded default, in about ten minutes on a CPU.

1. Teacher: the committed CIFAR-10 CaiT teacher (``artifacts/cifar10-teacher``) when present and the data has its
   classes, else a tiny CaiT trained here for a short budget.
2. ``analyze`` the teacher and take its recommended layer pairs for a 6-block student.
3. Train the same small DeiT student twice with the same short budget and seed: without KD, and with SpectralKD
   (logit KD + spectral alignment at the recommended pairs).
4. ``compare`` teacher and students; one self-contained HTML report, whose path is printed.

Data: ``--data`` if given, else the shared CIFAR-10 if present, else the generated image set.
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path

import yaml

from spectralkd.paths import REPO_ROOT, portable

TEACHER_DIR = REPO_ROOT / "artifacts" / "cifar10-teacher"
TEACHER_WEIGHTS = TEACHER_DIR / "teacher.safetensors"

STUDENT = {"name": "deit_tiny_patch16_224",
           "kwargs": {"img_size": 32, "patch_size": 4, "depth": 6, "embed_dim": 64, "num_heads": 2}}
TINY_TEACHER = {"name": "cait_xxs24_224",
                "kwargs": {"img_size": 32, "patch_size": 4, "depth": 8, "embed_dim": 64, "num_heads": 2,
                           "depth_token_only": 1}}


BATCH = 128


def _schedule(steps: int, train_images: int) -> tuple[int, int]:
    """(epochs, steps per epoch) giving at least ``steps`` optimiser steps when an epoch holds ``train_images //
    BATCH`` full batches: one capped epoch when the data is large enough (the shared CIFAR-10), else as many
    epochs as it takes (the generated set has 7 batches per epoch)."""
    per_epoch = max(1, train_images // BATCH)
    epochs = -(-steps // per_epoch)
    return epochs, -(-steps // epochs)


def _base_config(schedule: tuple[int, int], seed: int) -> dict:
    epochs, per_epoch = schedule
    return {
        "seed": seed, "precision": "bf16", "epochs": epochs, "max_steps_per_epoch": per_epoch, "max_val_batches": 4,
        "progress": True,
        "data": {"input_size": 32, "mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616],
                 "crop_pct": 1.0, "batch_size": BATCH, "eval_batch_size": 500, "num_workers": 1},
        "aug": {"scale": [0.6, 1.0], "auto_augment": "rand-m5-n1-mstd0.5", "smoothing": 0.1},
        "optim": {"lr": 1.0e-3, "weight_decay": 0.05, "clip_grad": 5.0},
        "sched": {"warmup_epochs": 0, "min_lr": 1.0e-5},
    }


def _write_yaml(path: Path, cfg: dict) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def _train_once(out: Path, name: str, command: str, cfg: dict, data: str) -> Path:
    """Run ``spectralkd <command>`` into ``out/name`` unless it already holds best weights → the run folder.

    The demo owns its output folder: a run it started earlier and that ended before its first epoch is redone.
    """
    from spectralkd.distill.trainer import train_classifier

    run_dir = out / name
    if not (run_dir / "best.safetensors").is_file():
        if run_dir.is_dir():
            shutil.rmtree(run_dir)
        path = _write_yaml(out / "configs" / f"{name}.yaml", cfg)
        train_classifier(command, config=path, data=data, out=str(run_dir),
            argv=[command, "--config", path, "--data", data, "--out", str(run_dir)])
    return run_dir


def _step(msg: str) -> None:
    print(f"\n== spectralkd demo: {msg}", file=sys.stderr, flush=True)


def _teacher(out: Path, data: str, classes: list[str], schedule: tuple[int, int], seed: int) -> tuple[str, dict, str]:
    """(weights path, {"name", "kwargs"}, where it came from)."""
    from spectralkd.runtime.checkpoint import load_weights

    if TEACHER_WEIGHTS.is_file():
        _, card = load_weights(TEACHER_WEIGHTS)
        # only on the data it was trained on (the same class names), not on any set with as many classes: a CIFAR
        # teacher's logits say nothing about the generated gratings, and logit KD from it would teach noise
        if list(card.get("data", {}).get("classes", [])) == list(classes):
            return str(TEACHER_WEIGHTS), {"name": card["model"], "kwargs": card["model_kwargs"]}, \
                f"committed teacher {TEACHER_WEIGHTS} (val top-1 {card.get('top1', float('nan')):.2f} %)"
    run_dir = _train_once(out, "teacher", "train", {**_base_config(schedule, seed), "model": dict(TINY_TEACHER)},
                          data)
    _, card = load_weights(run_dir / "best.safetensors")
    return str(run_dir / "best.safetensors"), {"name": card["model"], "kwargs": card["model_kwargs"]}, \
        f"tiny teacher trained here for {schedule[0] * schedule[1]} steps (val top-1 {card.get('top1', float('nan')):.2f} %)"


def run_demo(data: str | None, out: str | Path, steps: int = 300, num_images: int = 256, seed: int = 0,
             device: str = "auto") -> Path:
    from spectralkd.analysis.compare.pipeline import run_compare
    from spectralkd.analysis.pipeline import analyze_to_dir
    from spectralkd.data import default_data, labelled_split
    from spectralkd.runtime.device import pick_device
    from spectralkd.features import create_model

    start = time.time()
    out = Path(out)
    data = str(data or default_data())
    _, classes, _ = labelled_split(data, "val")
    train_items, _, _ = labelled_split(data, "train")
    schedule = _schedule(steps, len(train_items))
    _step("1/4 teacher")
    weights, teacher, origin = _teacher(out, data, list(classes), schedule, seed)
    print(f"teacher: {origin}", file=sys.stderr)

    _step("2/4 analyse the teacher")
    model = create_model(teacher["name"], checkpoint=weights, model_kwargs=teacher["kwargs"])
    base = _base_config(schedule, seed)
    analysis = analyze_to_dir(model, teacher["name"], data, out / "teacher-analysis", num_images=num_images,
                              batch_size=64, input_size=32,
                              data_overrides={"mean": base["data"]["mean"], "std": base["data"]["std"], "crop_pct": 1.0},
                              student_depth=STUDENT["kwargs"]["depth"], device=pick_device(device))
    rec = analysis.recommended
    print(f"recommended pairs (student <- teacher): "
          + " ".join(f"{s}<-{t}" for s, t in zip(rec["student_ids"], rec["teacher_ids"])), file=sys.stderr)

    runs = {}
    for name, distill in (("student-nokd", None),
                          ("student-spectralkd", {"mode": "soft", "alpha": 0.9, "tau": 1.0, "w_fft": 0.2,
                                                  "feature_loss": "spectral", "student_ids": "auto",
                                                  "teacher_ids": "auto",
                                                  "analysis": str(out / "teacher-analysis" / "analysis.json")})):
        _step(f"3/4 train {name} ({schedule[0] * schedule[1]} steps"
              + (f", {schedule[0]} epochs of {schedule[1]})" if schedule[0] > 1 else ")"))
        cfg = {**base, "device": device, "model": dict(STUDENT)}
        if distill:
            cfg["teacher"] = {"name": teacher["name"], "kwargs": teacher["kwargs"], "checkpoint": weights}
            cfg["distill"] = distill
        runs[name] = _train_once(out, name, "distill" if distill else "train", cfg, data)

    _step("4/4 compare teacher and students")
    result = run_compare([out / "teacher-analysis" / "analysis.json", runs["student-nokd"], runs["student-spectralkd"]],
                         ["teacher", "no KD", "SpectralKD"], out / "compare", num_images=num_images,
                         device=pick_device(device))
    summary = {"data": data, "teacher": origin, "pairs": rec, "seconds": round(time.time() - start, 1),
               "students": {}}
    for name, run_dir in runs.items():
        card = json.loads((run_dir / "best.safetensors.json").read_text())
        summary["students"][name] = {"best_top1": card.get("top1"), "epoch": card.get("epoch")}
    from spectralkd.runtime.io import atomic_write_text

    atomic_write_text(out / "demo.json", json.dumps(portable(summary, out), indent=1) + "\n")
    for s in result["students"]:
        m = s["measures"]["intensity"]
        print(f"{s['label']}: intensity-curve correlation with the teacher "
              f"{'n/a' if m['correlation'] is None else format(m['correlation'], '.3f')}", file=sys.stderr)
    return Path(result["files"]["report"])


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="the whole loop on a default: analyse teacher, distil, compare (≈10 min CPU)",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--data", metavar="PATH", help="ImageFolder dataset with train/ and val/ (folder or tarball); "
                   "default: the shared CIFAR-10 if present, else a generated image set")
    p.add_argument("--out", default="runs/demo", metavar="DIR", help="output folder (default: runs/demo)")
    p.add_argument("--steps", type=int, default=300, help="training steps per model (default: 300)")
    p.add_argument("--num-images", type=int, default=256, help="images per analysis (default: 256)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.set_defaults(func=_cli)


def _cli(args) -> int:
    from spectralkd.errors import UserError

    if args.steps < 1:
        raise UserError(f"--steps must be at least 1, got {args.steps}")
    report = run_demo(args.data, args.out, args.steps, args.num_images, args.seed, args.device)
    print(f"report: {report.resolve()}")
    return 0
