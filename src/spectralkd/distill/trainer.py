"""`spectralkd train` / `spectralkd distill`: the classifier trainer.

What is specific to classifiers lives here: the models, data, the :class:`~spectralkd.distill.task.SpectralKD`
objective, evaluation and the model card. The run directory (config, resume check, lock, checkpoints, log, the
non-finite stop) is :class:`spectralkd.runtime.run.Run`, shared with the SR trainer. A run directory holds
``config.yaml``, ``log.jsonl`` (one object per epoch), ``last.pt`` (model, EMA, optimizer, scheduler, scaler, RNG
states, epoch, best so far) and ``best.safetensors`` with its model card. Everything is checked and built before
anything is written. Each epoch reseeds every RNG from (seed, epoch, rank) and the samplers from the epoch, so
``--resume`` reproduces the uninterrupted run.
"""
from __future__ import annotations

import copy
import shlex
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

from spectralkd.config import get, run_config
from spectralkd.config.classifier import RESUME_MUTABLE, defaults
from spectralkd.data import default_data, labelled_split, resolve_data, synthetic_imagefolder
from spectralkd.distill import data_setup, model_setup
from spectralkd.distill.data_setup import DataBundle
from spectralkd.distill.evaluate import evaluate
from spectralkd.distill.loop import ClassifierTraining, train_one_epoch
from spectralkd.distill.losses import uses_feature_term
from spectralkd.distill.pairs import resolve_pairs, validate_pairs
from spectralkd.distill.task import SpectralKD
from spectralkd.errors import UserError, one_line
from spectralkd.features import load_into, num_block_maps
from spectralkd.runtime.distributed import DistEnv, barrier, cleanup, init_distributed
from spectralkd.runtime.precision import check_precision, make_scaler
from spectralkd.runtime.progress import Progress
from spectralkd.runtime.rng import get_rng_states, seed_everything, set_rng_states
from spectralkd.runtime.run import Run

EPOCH_SEED_STRIDE = 10007
GENERATED = "generated"  # data.path keyword: the generated 10-class image set (spectralkd.data.synthetic_imagefolder)
STATUS_EVERY_S = 300.0   # a status line this often when there is no progress bar (background runs)


def train_classifier(command: str, config: str | None = None, overrides: list[str] | None = None,
                     resume: str | None = None, data: str | None = None, out: str | None = None,
                     argv: list[str] | None = None) -> dict:
    """Train (``command='train'``) or distill; returns a summary with the last and best epochs."""
    cfg, saved = run_config(command, config, overrides or [], defaults(), resume,
                            {"data.path": None if data is None else str(data),
                             "out": None if out is None or resume else str(out)})
    env = init_distributed(cfg["device"])
    run = None
    try:
        run = Run.prepare(cfg, env, resume=resume, saved_cfg=saved, mutable=RESUME_MUTABLE,
                          default_name=f"runs/{command}-{time.strftime('%Y%m%d-%H%M%S')}", progress_key="epoch")
        if run.position > int(cfg["epochs"]):
            raise UserError(f"--resume {run.path}: epochs={cfg['epochs']} is below the {run.position} epochs already "
                            "done")
        training, data, card = build_training(command, cfg, env)
        best = restore(run.state, training, cfg) if run.state else {"top1": None, "epoch": None}
        card["command"] = shlex.join(["spectralkd", *(argv if argv is not None else sys.argv[1:])])
        run.start()
        return train_epochs(run, training, data, card, best, command)
    finally:
        if run is not None:
            run.close()
        cleanup()


def _data_path(cfg: dict, notice: bool) -> Path:
    if cfg["data"]["path"] is None:
        cfg["data"]["path"] = str(default_data(notice=notice))
    elif cfg["data"]["path"] == GENERATED:
        cfg["data"]["path"] = str(synthetic_imagefolder())
    return resolve_data(cfg["data"]["path"])


def build_training(command: str, cfg: dict, env: DistEnv) -> tuple[ClassifierTraining, DataBundle, dict]:
    """Models, data, task, optimizer, scheduler, scaler and EMA, all checked; the model card's fixed part."""
    precision = check_precision(env.device, cfg["precision"])
    if cfg.get("threads"):
        torch.set_num_threads(int(cfg["threads"]))
    distill = command == "distill"
    if not distill and get(cfg, "teacher.name"):
        raise UserError("`spectralkd train` trains without a teacher; remove teacher.name or use `spectralkd distill`")
    if distill and cfg["distill"]["mode"] == "none":
        raise UserError("distill.mode 'none' trains without a teacher; use `spectralkd train` for that")
    data_path = _data_path(cfg, env.is_main)
    seed_everything(int(cfg["seed"]))  # same on every process: randomly initialised models start identical
    _, classes, _ = labelled_split(data_path, "val")
    student, kwargs = model_setup.build_student(cfg, len(classes))
    data_cfg = data_setup.student_data_config(student, cfg)
    data = data_setup.build_data(cfg, data_path, data_cfg, env.rank, env.world_size)
    if data.classes != classes:
        raise UserError(f"data {data_path}: train and val classes differ")
    task = build_task(cfg, distill, student, data, warn=env.is_main)
    task.to(env.device)
    if env.distributed:
        task.prepare_distributed(device_ids=[env.device.index] if env.device.type == "cuda" else None)
    steps = len(data.train_loader)
    if cfg["max_steps_per_epoch"]:
        steps = min(steps, int(cfg["max_steps_per_epoch"]))
    lr = model_setup.effective_lr(cfg, int(cfg["data"]["batch_size"]) * env.world_size)
    optimizer = model_setup.build_optimizer(cfg, student, lr)
    training = ClassifierTraining(task, optimizer, model_setup.build_scheduler(cfg, optimizer, steps),
                                  make_scaler(env.device, precision), model_setup.build_ema(cfg, student), data.mixup,
                                  env.device, precision, cfg["optim"]["clip_grad"], steps)
    pairs = {"student_ids": task.student_layers, "teacher_ids": task.teacher_layers} if task.student_layers else None
    card = {"model": cfg["model"]["name"], "model_kwargs": kwargs, "seed": int(cfg["seed"]), "pairs": pairs,
            "data": {"path": str(cfg["data"]["path"]), "classes": data.classes,
                     "input_size": data_cfg["input_size"][-1], "mean": list(data_cfg["mean"]),
                     "std": list(data_cfg["std"]), "interpolation": data_cfg.get("interpolation"),
                     "crop_pct": data_cfg.get("crop_pct"), "num_train": data.num_train, "num_val": data.num_val}}
    return training, data, card


def base_criterion(cfg: dict, data: DataBundle) -> nn.Module:
    """Soft-target CE under Mixup/CutMix (which smooths labels itself), else label-smoothed CE."""
    if data.mixup is not None:
        return SoftTargetCrossEntropy()
    smoothing = float(cfg["aug"]["smoothing"])
    return LabelSmoothingCrossEntropy(smoothing) if smoothing > 0 else nn.CrossEntropyLoss()


def build_task(cfg: dict, distill: bool, student: nn.Module, data: DataBundle, warn: bool = False) -> SpectralKD:
    """The objective as a :class:`SpectralKD` task: the config's teacher, layer pairs (checked) and loss settings."""
    criterion = base_criterion(cfg, data)
    if not distill:
        return SpectralKD(student, None, mode="none", criterion=criterion)
    distill_cfg = cfg["distill"]
    loss_settings = {"mode": distill_cfg["mode"], "alpha": float(distill_cfg["alpha"]), "tau": float(distill_cfg["tau"]),
                     "beta": float(distill_cfg["beta"]), "w_fft": float(distill_cfg["w_fft"]),
                     "feature_loss": distill_cfg["feature_loss"], "band_emphasis": distill_cfg["band_emphasis"],
                     "band_strength": float(distill_cfg["band_strength"])}
    teacher, teacher_norm = model_setup.build_teacher(cfg, len(data.classes))
    student_ids = teacher_ids = None
    if uses_feature_term(loss_settings["mode"], loss_settings["beta"], loss_settings["w_fft"]):
        student_ids, teacher_ids = resolve_pairs(distill_cfg["student_ids"], distill_cfg["teacher_ids"],
                                                 distill_cfg["analysis"], num_block_maps(student),
                                                 num_block_maps(teacher))
        validate_pairs(student, teacher, student_ids, teacher_ids, data.data_cfg["input_size"][-1])
    return SpectralKD(student, teacher, student_ids, teacher_ids, criterion=criterion,
                      student_norm=(data.data_cfg["mean"], data.data_cfg["std"]), teacher_norm=teacher_norm,
                      warn=warn, **loss_settings)


def train_epochs(run: Run, t: ClassifierTraining, data: DataBundle, card: dict, best: dict, command: str) -> dict:
    """The epochs from the run's position to ``epochs`` (or ``stop_after_epoch``); a summary of the last and best."""
    cfg, env = run.cfg, run.env
    epochs, seed = int(cfg["epochs"]), int(cfg["seed"])
    stop = int(cfg["stop_after_epoch"]) if cfg.get("stop_after_epoch") else epochs
    if env.is_main:
        _announce(run, t, data, command)
    last = None
    for epoch in range(run.position, min(epochs, stop)):
        seed_everything(seed + EPOCH_SEED_STRIDE * (epoch + 1), env.rank)
        if hasattr(data.sampler, "set_epoch"):
            data.sampler.set_epoch(epoch)
        bar = bool(cfg["progress"]) and env.is_main
        with Progress(t.steps_per_epoch, f"epoch {epoch + 1}/{epochs}", bar,
                      status_every_s=STATUS_EVERY_S if env.is_main else None) as progress:
            record = train_one_epoch(run, t, data.train_loader, epoch, progress)
        which, top1, top5, net = _validate(t, data, cfg, record, bar)
        improved = best["top1"] is None or top1 > best["top1"]
        if improved:
            best = {"top1": top1, "top5": top5, "epoch": epoch + 1, "weights": which}
        record = {"epoch": epoch + 1, **record, "best_top1": best["top1"], "best_epoch": best["epoch"]}
        run.log.write(record)
        weights = {"best.safetensors": (net.state_dict(), {**card, "weights": which, "top1": best["top1"],
                                                          "top5": best["top5"], "epoch": epoch + 1,
                                                          "config": cfg})} if improved else None
        run.save(_training_state(epoch + 1, t, best), weights)
        if env.is_main:
            _epoch_line(record, epochs, t.ema is not None, improved)
        barrier()
        last = record
    if env.is_main:
        _summary_lines(run, last, best, epochs, command)
    return {"run_dir": str(run.path), "last": last, "best": best, "epochs": epochs}


def _validate(t: ClassifierTraining, data: DataBundle, cfg: dict, record: dict, bar: bool) -> tuple:
    """Evaluate the student (and its EMA) into ``record``; the better of the two is the epoch's candidate:
    (``"model"`` or ``"ema"``, top-1, top-5, its module)."""
    student = t.task.student
    val = evaluate(student, data.val_loader, t.device, t.precision, cfg["max_val_batches"], bar, desc="val")
    record.update({"val_top1": val["top1"], "val_top5": val["top5"], "val_loss": val["loss"]})
    candidates = [("model", val["top1"], val["top5"], student)]
    if t.ema is not None:
        ema = evaluate(t.ema.module, data.val_loader, t.device, t.precision, cfg["max_val_batches"], bar,
                       desc="val ema")
        record.update({"ema_val_top1": ema["top1"], "ema_val_top5": ema["top5"]})
        candidates.append(("ema", ema["top1"], ema["top5"], t.ema.module))
    return max(candidates, key=lambda c: c[1])


def _announce(run: Run, t: ClassifierTraining, data: DataBundle, command: str) -> None:
    cfg = run.cfg
    what = (f"distilling {cfg['teacher']['name']} → {cfg['model']['name']}" if command == "distill"
            else f"training {cfg['model']['name']}")
    pairs = f", pairs student {t.task.student_layers} ↔ teacher {t.task.teacher_layers}" if t.task.student_layers else ""
    print(f"spectralkd {command}: {what} on {cfg['data']['path']} ({data.num_train} train / {data.num_val} val images, "
          f"{len(data.classes)} classes{pairs}), epochs {run.position + 1}..{cfg['epochs']}, {t.steps_per_epoch} "
          f"steps/epoch, {run.env.world_size} process(es), {t.precision}; run dir {run.path}", file=sys.stderr)


def _epoch_line(record: dict, epochs: int, has_ema: bool, improved: bool) -> None:
    ema_note = f" ema {record['ema_val_top1']:.2f}" if has_ema else ""
    print(f"epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f} lr {record['lr']:.2e} "
          f"{record['img_per_s']:.0f} img/s | val top1 {record['val_top1']:.2f} top5 {record['val_top5']:.2f}"
          f"{ema_note}{' (best)' if improved else ''}", file=sys.stderr)


def _summary_lines(run: Run, last: dict | None, best: dict, epochs: int, command: str) -> None:
    if last is None:
        print(f"spectralkd {command}: {run.path} already finished {run.position} of {epochs} epochs; nothing to do "
              f"(extend with --resume {run.path} --set epochs=N)", file=sys.stderr)
        return
    if last["epoch"] < epochs:
        print(f"spectralkd {command}: stopped after epoch {last['epoch']} of {epochs} (stop_after_epoch); "
              f"continue with --resume {run.path} --set stop_after_epoch=null", file=sys.stderr)
    print(f"spectralkd {command}: done. last epoch {last['epoch']}: top1 {last['val_top1']:.2f} top5 "
          f"{last['val_top5']:.2f}; best epoch {best['epoch']}: top1 {best['top1']:.2f} ({best['weights']}) → "
          f"{run.path / 'best.safetensors'}", file=sys.stderr)


def _training_state(epoch: int, t: ClassifierTraining, best: dict) -> dict:
    return {
        "epoch": epoch,
        "model": t.task.student.state_dict(),
        "ema": t.ema.module.state_dict() if t.ema is not None else None,
        "optimizer": t.optimizer.state_dict(),
        "scheduler": t.scheduler.state_dict() if t.scheduler is not None else None,
        "scaler": t.scaler.state_dict(),
        "rng": get_rng_states(),
        "best": {k: v for k, v in best.items() if v is not None},
    }


def restore(state: dict, t: ClassifierTraining, cfg: dict) -> dict:
    """Load a ``last.pt`` state into the training objects; returns the best-so-far record."""
    source = str(Path(cfg["out"]) / "last.pt")
    load_into(t.task.student, state["model"], source)
    if t.ema is not None:
        if state.get("ema") is None:
            raise UserError(f"{source} holds no EMA weights but ema.enabled is true")
        load_into(t.ema.module, state["ema"], source + " (ema)")
    try:
        t.optimizer.load_state_dict(state["optimizer"])
        t.scaler.load_state_dict(state["scaler"])
    except (ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise UserError(f"{source}: optimizer state does not fit this config ({one_line(exc, 120)})") from None
    # timm schedulers are functions of the step; their state is only re-loaded when the length is unchanged, so
    # `--set epochs=N` can extend a run with a new cosine horizon.
    saved = state.get("scheduler")
    if t.scheduler is not None and isinstance(saved, dict) and saved.get("t_initial") == t.scheduler.t_initial:
        t.scheduler.load_state_dict(copy.deepcopy(saved))
    if state.get("rng"):
        set_rng_states(state["rng"])
    best = dict(state.get("best") or {})
    best.setdefault("top1", None)
    best.setdefault("epoch", None)
    return best
