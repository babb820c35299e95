"""`spectralkd train` / `spectralkd distill`: the run (config, run directory, epochs, checkpoints, resume).

A run directory holds the resolved ``config.yaml``, ``log.jsonl`` (one object per epoch), ``last.pt`` (model, EMA,
optimizer, scheduler, scaler, RNG states, epoch, best so far; weights-only loadable, written atomically) and
``best.safetensors`` with its model card ``best.safetensors.json``. Everything is checked and built before anything
is written, so bad input leaves an existing run untouched. Each epoch reseeds every RNG from (seed, epoch, rank) and
the samplers from the epoch, so ``--resume`` reproduces the uninterrupted run.
"""
from __future__ import annotations

import copy
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel

from spectralkd.config import get, load_config, save_config
from spectralkd.data import default_data, resolve_data, synthetic_imagefolder
from spectralkd.distill import data_setup, model_setup
from spectralkd.runtime.precision import check_precision, make_scaler
from spectralkd.runtime.checkpoint import atomic_torch_save, load_torch_state, save_weights
from spectralkd.config.classifier import RESUME_MUTABLE, defaults
from spectralkd.runtime.distributed import barrier, broadcast_object, cleanup, init_distributed
from spectralkd.distill.evaluate import evaluate
from spectralkd.distill.loop import StepParts, train_one_epoch
from spectralkd.distill.losses import SpectralKDLoss
from spectralkd.distill.pairs import resolve_pairs, validate_pairs
from spectralkd.runtime.rng import get_rng_states, seed_everything, set_rng_states
from spectralkd.runtime.runlog import JsonlLog
from spectralkd.errors import UserError
from spectralkd.data import labelled_split
from spectralkd.features import load_into
from spectralkd.features import MapsAndLogits, num_block_maps

EPOCH_SEED_STRIDE = 10007
GENERATED = "generated"  # data.path keyword: the generated 10-class image set (spectralkd.data.synthetic_imagefolder)


def _flatten(cfg: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and key not in ("kwargs",):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def resolve_config(command: str, config: str | None, overrides: list[str], resume: str | None,
                   data: str | None = None, out: str | None = None) -> tuple[dict, Path | None, dict | None]:
    """(config, resume dir, saved last.pt state) with ``--data``/``--out`` applied; checks resume compatibility."""
    if resume is None:
        if config is None:
            raise UserError(f"spectralkd {command} needs --config FILE.yaml (or --resume RUN_DIR)")
        cfg = load_config(config, overrides, defaults())
        if data is not None:
            cfg["data"]["path"] = str(data)
        if out is not None:
            cfg["out"] = str(out)
        return cfg, None, None
    run_dir = Path(resume)
    if config is not None:
        raise UserError("--resume continues a run with its saved config.yaml; change keys with --set, not --config")
    if not (run_dir / "config.yaml").is_file() or not (run_dir / "last.pt").is_file():
        raise UserError(f"--resume {run_dir}: not a run directory (needs config.yaml and last.pt)")
    saved = load_config(run_dir / "config.yaml", [], defaults())
    extra = list(overrides)
    if data is not None:
        extra.append(f"data.path={data}")
    cfg = load_config(run_dir / "config.yaml", extra, defaults())
    before, after = _flatten(saved), _flatten(cfg)
    changed = [k for k in after if after[k] != before.get(k) and k not in RESUME_MUTABLE]
    if changed:
        raise UserError(f"--resume {run_dir}: {changed[0]} differs from the saved run ({before.get(changed[0])!r} → "
                        f"{after[changed[0]]!r}); only {', '.join(RESUME_MUTABLE)} may change")
    state = load_torch_state(run_dir / "last.pt")
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise UserError(f"checkpoint {run_dir / 'last.pt'} is not a spectralkd training state")
    if int(cfg["epochs"]) < int(state["epoch"]):
        raise UserError(f"--resume {run_dir}: epochs={cfg['epochs']} is below the {state['epoch']} epochs already done")
    cfg["out"] = str(run_dir)
    return cfg, run_dir, state


def _new_run_dir(command: str, cfg: dict, is_main: bool) -> Path:
    name = cfg.get("out") or f"runs/{command}-{time.strftime('%Y%m%d-%H%M%S')}"
    name = broadcast_object(name)
    path = Path(name)
    if (path / "last.pt").exists() or (path / "config.yaml").exists():
        raise UserError(f"run directory {path} already holds a run; continue it with --resume {path} or choose --out")
    return path


def run(command: str, config: str | None = None, overrides: list[str] | None = None, resume: str | None = None,
        data: str | None = None, out: str | None = None, argv: list[str] | None = None) -> dict:
    """Train (``command='train'``) or distill; returns a summary with the last and best epochs."""
    cfg, resume_dir, state = resolve_config(command, config, overrides or [], resume, data, out)
    env = init_distributed(cfg["device"])
    try:
        return _run(command, cfg, resume_dir, state, env, argv if argv is not None else sys.argv[1:])
    finally:
        cleanup()


def _run(command, cfg, resume_dir, state, env, argv) -> dict:
    device, main = env.device, env.is_main
    precision = check_precision(device, cfg["precision"])
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    distill = command == "distill"
    if not distill and get(cfg, "teacher.name"):
        raise UserError("`spectralkd train` trains without a teacher; remove teacher.name or use `spectralkd distill`")
    if cfg["data"]["path"] is None:
        cfg["data"]["path"] = str(default_data(notice=main))
    elif cfg["data"]["path"] == GENERATED:
        cfg["data"]["path"] = str(synthetic_imagefolder())
    data_path = resolve_data(cfg["data"]["path"])
    seed = int(cfg["seed"])
    seed_everything(seed)  # same on every process: randomly initialised models start identical

    # ---- models, data, loss, pairs: everything is checked before the run directory is touched ----

    _, classes, _ = labelled_split(data_path, "val")
    student, kwargs = model_setup.build_student(cfg, len(classes))
    dcfg = data_setup.student_data_config(student, cfg)
    bundle = data_setup.build_data(cfg, data_path, dcfg, env.rank, env.world_size)
    if bundle.classes != classes:
        raise UserError(f"data {data_path}: train and val classes differ")
    d = cfg["distill"]
    base = base_criterion(cfg, bundle)
    criterion = SpectralKDLoss(base, mode=d["mode"] if distill else "none", alpha=float(d["alpha"]), tau=float(d["tau"]),
                               beta=float(d["beta"]), w_fft=float(d["w_fft"]), feature_loss=d["feature_loss"],
                               band_emphasis=d["band_emphasis"], band_strength=float(d["band_strength"]),
                               spatial=d["spatial_align"])
    teacher_fwd, s_ids, t_ids = None, None, None
    if distill:
        if d["mode"] == "none":
            raise UserError("distill.mode 'none' trains without a teacher; use `spectralkd train` for that")
        teacher, t_mean, t_std = model_setup.build_teacher(cfg, len(classes))
        if criterion.uses_features:
            s_ids, t_ids = resolve_pairs(d["student_ids"], d["teacher_ids"], d["analysis"],
                                         num_block_maps(student), num_block_maps(teacher))
            validate_pairs(student, teacher, s_ids, t_ids, dcfg["input_size"][-1], spatial=d["spatial_align"])
        renorm = model_setup.teacher_input(dcfg["mean"], dcfg["std"], t_mean, t_std, cfg["teacher"]["name"], warn=main)
        teacher_fwd = model_setup.TeacherForward(teacher, t_ids, renorm).to(device)
    student.to(device)
    wrapped: nn.Module = MapsAndLogits(student, s_ids)
    if env.distributed:
        wrapped = DistributedDataParallel(wrapped, device_ids=[device.index] if device.type == "cuda" else None)
    steps = len(bundle.train_loader)
    if cfg["max_steps_per_epoch"]:
        steps = min(steps, int(cfg["max_steps_per_epoch"]))
    global_batch = int(cfg["data"]["batch_size"]) * env.world_size
    optimizer = model_setup.build_optimizer(cfg, student, model_setup.effective_lr(cfg, global_batch))
    scheduler = model_setup.build_scheduler(cfg, optimizer, steps)
    scaler = make_scaler(device, precision)
    ema = model_setup.build_ema(cfg, student)

    start_epoch, best = 0, {"top1": None, "epoch": None}
    if state is not None:
        start_epoch, best = _restore(state, student, ema, optimizer, scheduler, scaler, cfg, resume_dir)
        run_dir = resume_dir
    else:
        run_dir = _new_run_dir(command, cfg, main)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
    barrier()
    log = JsonlLog(run_dir / "log.jsonl", enabled=main)
    log.truncate_after("epoch", start_epoch)

    parts = StepParts(wrapped, student, teacher_fwd, criterion, optimizer, scheduler, scaler, ema, bundle.mixup,
                      device, precision, cfg["optim"]["clip_grad"], env.world_size)
    command_line = shlex.join(["spectralkd", *argv])
    card_data = {"path": str(cfg["data"]["path"]), "classes": bundle.classes, "input_size": dcfg["input_size"][-1],
                 "mean": list(dcfg["mean"]), "std": list(dcfg["std"]), "interpolation": dcfg.get("interpolation"),
                 "crop_pct": dcfg.get("crop_pct"), "num_train": bundle.num_train, "num_val": bundle.num_val}
    epochs = int(cfg["epochs"])
    if main:
        what = f"distilling {cfg['teacher']['name']} → {cfg['model']['name']}" if distill else f"training {cfg['model']['name']}"
        pairs = f", pairs student {s_ids} ↔ teacher {t_ids}" if s_ids else ""
        print(f"spectralkd {command}: {what} on {data_path} ({bundle.num_train} train / {bundle.num_val} val images, "
              f"{len(bundle.classes)} classes{pairs}), epochs {start_epoch + 1}..{epochs}, {steps} steps/epoch, "
              f"{env.world_size} process(es), {precision}; run dir {run_dir}", file=sys.stderr)
    last = None
    stop = int(cfg["stop_after_epoch"]) if cfg.get("stop_after_epoch") else epochs
    for epoch in range(start_epoch, min(epochs, stop)):
        seed_everything(seed + EPOCH_SEED_STRIDE * (epoch + 1), env.rank)
        if hasattr(bundle.sampler, "set_epoch"):
            bundle.sampler.set_epoch(epoch)
        progress = bool(cfg["progress"]) and main
        train = train_one_epoch(parts, bundle.train_loader, epoch, steps, progress, desc=f"epoch {epoch + 1}/{epochs}",
                                status_every_s=300.0 if main and not progress else None)
        val = evaluate(student, bundle.val_loader, device, precision, cfg["max_val_batches"], progress, desc="val")
        record = {"epoch": epoch + 1, **train, "val_top1": val["top1"], "val_top5": val["top5"], "val_loss": val["loss"]}
        candidates = [("model", val["top1"], val["top5"], student)]
        if ema is not None:
            ev = evaluate(ema.module, bundle.val_loader, device, precision, cfg["max_val_batches"], progress, desc="val ema")
            record.update({"ema_val_top1": ev["top1"], "ema_val_top5": ev["top5"]})
            candidates.append(("ema", ev["top1"], ev["top5"], ema.module))
        which, top1, top5, net = max(candidates, key=lambda c: c[1])
        improved = best["top1"] is None or top1 > best["top1"]
        if improved:
            best = {"top1": top1, "top5": top5, "epoch": epoch + 1, "weights": which}
        record["best_top1"], record["best_epoch"] = best["top1"], best["epoch"]
        log.write(record)
        if main:
            if improved:
                card = {"model": cfg["model"]["name"], "model_kwargs": kwargs, "weights": which, "top1": top1,
                        "top5": top5, "epoch": epoch + 1, "seed": seed, "command": command_line, "data": card_data,
                        "pairs": {"student_ids": s_ids, "teacher_ids": t_ids} if s_ids else None,
                        "config": cfg}
                save_weights(run_dir / "best.safetensors", net.state_dict(), card)
            atomic_torch_save(_training_state(epoch + 1, student, ema, optimizer, scheduler, scaler, best),
                              run_dir / "last.pt")
            ema_note = f" ema {record['ema_val_top1']:.2f}" if ema is not None else ""
            print(f"epoch {epoch + 1}/{epochs}: loss {train['train_loss']:.4f} lr {train['lr']:.2e} "
                  f"{train['img_per_s']:.0f} img/s | val top1 {val['top1']:.2f} top5 {val['top5']:.2f}{ema_note}"
                  f"{' (best)' if improved else ''}", file=sys.stderr)
        barrier()
        last = record
    summary = {"run_dir": str(run_dir), "last": last, "best": best, "epochs": epochs}
    if main:
        if last is None:
            print(f"spectralkd {command}: {run_dir} already finished {start_epoch} of {epochs} epochs; nothing to do "
                  f"(extend with --resume {run_dir} --set epochs=N)", file=sys.stderr)
        else:
            if last["epoch"] < epochs:
                print(f"spectralkd {command}: stopped after epoch {last['epoch']} of {epochs} (stop_after_epoch); "
                      f"continue with --resume {run_dir} --set stop_after_epoch=null", file=sys.stderr)
            print(f"spectralkd {command}: done. last epoch {last['epoch']}: top1 {last['val_top1']:.2f} top5 "
                  f"{last['val_top5']:.2f}; best epoch {best['epoch']}: top1 {best['top1']:.2f} ({best['weights']}) → "
                  f"{run_dir / 'best.safetensors'}", file=sys.stderr)
    return summary


def base_criterion(cfg: dict, bundle) -> nn.Module:
    """Soft-target CE under Mixup/CutMix (which smooths labels itself), else label-smoothed CE."""
    from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

    if bundle.mixup is not None:
        return SoftTargetCrossEntropy()
    smoothing = float(cfg["aug"]["smoothing"])
    return LabelSmoothingCrossEntropy(smoothing) if smoothing > 0 else nn.CrossEntropyLoss()


def _training_state(epoch, student, ema, optimizer, scheduler, scaler, best) -> dict:
    return {
        "epoch": epoch,
        "model": student.state_dict(),
        "ema": ema.module.state_dict() if ema is not None else None,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict(),
        "rng": get_rng_states(),
        "best": {k: v for k, v in best.items() if v is not None},
    }


def _restore(state, student, ema, optimizer, scheduler, scaler, cfg, run_dir) -> tuple[int, dict]:

    source = str(Path(run_dir) / "last.pt")
    load_into(student, state["model"], source)
    if ema is not None:
        if state.get("ema") is None:
            raise UserError(f"{source} holds no EMA weights but ema.enabled is true")
        load_into(ema.module, state["ema"], source + " (ema)")
    try:
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError, RuntimeError) as exc:
        raise UserError(f"{source}: optimizer state does not fit this config ({' '.join(str(exc).split())[:120]})") from None
    # timm schedulers are functions of the step; their state is only re-loaded when the length is unchanged, so
    # `--set epochs=N` can extend a run with a new cosine horizon.
    if scheduler is not None and state.get("scheduler") and state["scheduler"].get("t_initial") == scheduler.t_initial:
        scheduler.load_state_dict(copy.deepcopy(state["scheduler"]))
    if state.get("rng"):
        set_rng_states(state["rng"])
    best = dict(state.get("best") or {})
    best.setdefault("top1", None)
    best.setdefault("epoch", None)
    return int(state["epoch"]), best
