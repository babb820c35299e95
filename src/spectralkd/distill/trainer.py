"""`spectralkd train` / `spectralkd distill`: the classifier trainer, for one student or a cohort of students.

What is specific to classifiers lives here: the models, data, the :class:`~spectralkd.distill.task.SpectralKD`
objective, evaluation and the model card. The run directory (config, resume check, lock, checkpoints, log, the
non-finite stop) is :class:`spectralkd.runtime.run.Run`, shared with the SR trainer. A run directory holds
``config.yaml``, ``log.jsonl`` (one object per epoch), ``last.pt`` (model, EMA, optimizer, scheduler, scaler, RNG
states, epoch, best so far), ``best.safetensors`` with its model card and, with ``monitor.every`` > 0,
``dynamics.jsonl`` (:mod:`spectralkd.distill.monitor`). Everything is checked and built before
anything is written. Each epoch reseeds every RNG from (seed, epoch, rank) and the samplers from the epoch, so
``--resume`` reproduces the uninterrupted run. A cohort (``--cohort FILE``, :mod:`spectralkd.distill.cohort`) trains
several students on one data stream and one teacher pass per batch, each in its own run folder.
"""
from __future__ import annotations

import copy
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from timm.loss import LabelSmoothingCrossEntropy, SoftTargetCrossEntropy

from spectralkd.config import get, run_config
from spectralkd.config.classifier import RESUME_MUTABLE, defaults
from spectralkd.data import data_identity, default_data, labelled_split, resolve_data, synthetic_imagefolder
from spectralkd.distill import data_setup, model_setup
from spectralkd.distill.data_setup import DataBundle
from spectralkd.distill.evaluate import evaluate
from spectralkd.distill.loop import ClassifierTraining, SharedTeacher, Student, train_one_epoch
from spectralkd.distill.losses import uses_feature_term
from spectralkd.distill.monitor import Monitor
from spectralkd.distill.pairs import resolve_pairs, validate_pairs
from spectralkd.distill.task import SpectralKD
from spectralkd.errors import UserError, one_line
from spectralkd.features import load_into, num_block_maps
from spectralkd.paths import portable
from spectralkd.runtime.distributed import DistEnv, barrier, cleanup, init_distributed
from spectralkd.runtime.precision import check_precision, make_scaler
from spectralkd.runtime.progress import Progress
from spectralkd.runtime.rng import RngStream, get_rng_states, seed_everything, set_rng_states
from spectralkd.runtime.run import Run

EPOCH_SEED_STRIDE = 10007
GENERATED = "generated"  # data.path keyword: the generated 10-class image set (spectralkd.data.synthetic_imagefolder)
STATUS_EVERY_S = 300.0   # a status line this often when there is no progress bar (background runs)


@dataclass
class RunSpec:
    """One student to train: its name in a cohort ("" alone), resolved config, saved config and folder to resume."""
    name: str
    cfg: dict
    saved: dict | None
    resume: str | Path | None
    default_name: str


def train_classifier(command: str, config: str | None = None, overrides: list[str] | None = None,
                     resume: str | None = None, data: str | None = None, out: str | None = None,
                     argv: list[str] | None = None) -> dict:
    """Train (``command='train'``) or distill one student; returns a summary with the last and best epochs."""
    cfg, saved = run_config(command, config, overrides or [], defaults(), resume,
                            {"data.path": None if data is None else str(data),
                             "out": None if out is None or resume else str(out)})
    spec = RunSpec("", cfg, saved, resume, f"runs/{command}-{time.strftime('%Y%m%d-%H%M%S')}")
    return train_students(command, [spec], argv)[0]


def train_students(command: str, specs: list[RunSpec], argv: list[str] | None = None, on_start=None) -> list[dict]:
    """Train the students of ``specs`` together (one data stream, one teacher pass per batch); a summary each.
    ``on_start()`` is called (main process) once every student's run folder is checked and started."""
    env = init_distributed(specs[0].cfg["device"])
    runs: list[Run] = []
    try:
        for spec in specs:
            run = Run.prepare(spec.cfg, env, resume=spec.resume, saved_cfg=spec.saved, mutable=RESUME_MUTABLE,
                              default_name=spec.default_name, progress_key="epoch")
            if run.position > int(spec.cfg["epochs"]):
                raise UserError(f"--resume {run.path}: epochs={spec.cfg['epochs']} is below the {run.position} "
                                "epochs already done")
            runs.append(run)
        students, data, shared = build_students(command, [s.name for s in specs], runs, env)
        line = shlex.join(["spectralkd", *(argv if argv is not None else sys.argv[1:])])
        for student in students:
            student.card["command"] = line
            student.run.start()
        if on_start is not None and env.is_main:
            on_start()
        return train_epochs(students, data, command, shared)
    finally:
        for run in runs:
            run.close()
        cleanup()


def _data_path(cfg: dict, notice: bool) -> Path:
    if cfg["data"]["path"] is None:
        cfg["data"]["path"] = str(default_data(notice=notice))
    elif cfg["data"]["path"] == GENERATED:
        cfg["data"]["path"] = str(synthetic_imagefolder())
    return resolve_data(cfg["data"]["path"])


def _check_command(command: str, cfgs: list[dict]) -> None:
    """``train`` has no teacher; ``distill`` needs one student that uses it (in a cohort, a member in mode ``none``
    is a no-KD control that sees the same batches)."""
    if command != "distill" and any(get(cfg, "teacher.name") for cfg in cfgs):
        raise UserError("`spectralkd train` trains without a teacher; remove teacher.name or use `spectralkd distill`")
    if command == "distill" and all(cfg["distill"]["mode"] == "none" for cfg in cfgs):
        raise UserError("distill.mode 'none' trains without a teacher; use `spectralkd train` for that (in a cohort, "
                        "a student in mode none is allowed beside students that distil)")


def build_students(command: str, names: list[str], runs: list[Run], env: DistEnv):
    """Every student's models, task, optimizer, scheduler, scaler and EMA (restored when resuming), the shared data
    and, for a cohort with a teacher, the shared teacher pass. All checked before anything is written."""
    first = runs[0].cfg
    precision = check_precision(env.device, first["precision"])
    if first.get("threads"):
        torch.set_num_threads(int(first["threads"]))
    _check_command(command, [run.cfg for run in runs])
    data_path = _data_path(first, env.is_main)
    for run in runs[1:]:
        run.cfg["data"]["path"] = first["data"]["path"]
    _, classes, _ = labelled_split(data_path, "val" if not first["data"]["holdout"] else first["data"]["test_split"])
    students, data, teacher, card_data = [], None, None, None
    for name, run in zip(names, runs):
        seed_everything(int(run.cfg["seed"]))  # same on every process, and for every student of a cohort
        student, kwargs = model_setup.build_student(run.cfg, len(classes))
        data_cfg = data_setup.student_data_config(student, run.cfg)
        if data is None:
            data = data_setup.build_data(first, data_path, data_cfg, env.rank, env.world_size)
        elif data_cfg != data.data_cfg:
            raise UserError(f"cohort student {name} needs another input pipeline ({data_cfg}) than the first "
                            f"({data.data_cfg}); a cohort shares its data: set data.mean/std/input_size the same")
        if data.classes != classes:
            raise UserError(f"data {data_path}: train and val classes differ")
        if command == "distill" and teacher is None:
            teacher = model_setup.build_teacher(first, len(classes))
        training = build_training(run.cfg, env, student, data, precision,
                                  build_task(run.cfg, command == "distill", student, data, teacher,
                                             warn=env.is_main and not students))
        best = restore(run.state, training, run.cfg) if run.state else {"top1": None, "epoch": None}
        if card_data is None:
            card_data = _card_data(first, data)
        students.append(Student(name, run, training, _card(run.cfg, kwargs, training, card_data), best))
    shared = SharedTeacher(students, compile=bool(first.get("compile"))) \
        if len(students) > 1 and teacher is not None else None
    return students, data, shared


def build_training(cfg: dict, env: DistEnv, student: nn.Module, data: DataBundle, precision: str,
                   task: SpectralKD) -> ClassifierTraining:
    """Optimizer, scheduler, scaler and EMA of one student around its task (moved to the device, DDP-wrapped)."""
    task.to(env.device)
    if cfg.get("compile"):
        task.compile()
    if env.distributed:
        task.prepare_distributed(device_ids=[env.device.index] if env.device.type == "cuda" else None)
    steps = len(data.train_loader)
    if cfg["max_steps_per_epoch"]:
        steps = min(steps, int(cfg["max_steps_per_epoch"]))
    lr = model_setup.effective_lr(cfg, int(cfg["data"]["batch_size"]) * env.world_size)
    optimizer = model_setup.build_optimizer(cfg, student, lr)
    return ClassifierTraining(task, optimizer, model_setup.build_scheduler(cfg, optimizer, steps),
                              make_scaler(env.device, precision), model_setup.build_ema(cfg, student), data.mixup,
                              env.device, precision, cfg["optim"]["clip_grad"], steps)


def _card_data(cfg: dict, data: DataBundle) -> dict:
    """The model card's data entry, the same for every student of a cohort (the content hash is taken once)."""
    data_cfg = data.data_cfg
    return {**data_identity(cfg["data"]["path"], data.classes),
            "input_size": data_cfg["input_size"][-1], "mean": list(data_cfg["mean"]),
            "std": list(data_cfg["std"]), "interpolation": data_cfg.get("interpolation"),
            "crop_pct": data_cfg.get("crop_pct"), "num_train": data.num_train, "num_val": data.num_val,
            "holdout": int(cfg["data"]["holdout"] or 0)}


def _card(cfg: dict, kwargs: dict, training: ClassifierTraining, card_data: dict) -> dict:
    """The model card's fixed part (the epoch, accuracy and command are added when weights are saved)."""
    task = training.task
    pairs = {"student_ids": task.student_layers, "teacher_ids": task.teacher_layers} if task.student_layers else None
    return {"model": cfg["model"]["name"], "model_kwargs": kwargs, "seed": int(cfg["seed"]), "pairs": pairs,
            "data": card_data}


def base_criterion(cfg: dict, data: DataBundle) -> nn.Module:
    """Soft-target CE under Mixup/CutMix (which smooths labels itself), else label-smoothed CE."""
    if data.mixup is not None:
        return SoftTargetCrossEntropy()
    smoothing = float(cfg["aug"]["smoothing"])
    return LabelSmoothingCrossEntropy(smoothing) if smoothing > 0 else nn.CrossEntropyLoss()


def build_task(cfg: dict, distill: bool, student: nn.Module, data: DataBundle, teacher: tuple | None = None,
               warn: bool = False) -> SpectralKD:
    """The objective as a :class:`SpectralKD` task: ``teacher`` is ``(model, (mean, std))`` of
    :func:`model_setup.build_teacher`; the config's layer pairs (checked) and loss settings."""
    criterion = base_criterion(cfg, data)
    if not distill:
        return SpectralKD(student, None, mode="none", criterion=criterion)
    distill_cfg = cfg["distill"]
    loss_settings = {"mode": distill_cfg["mode"], "alpha": float(distill_cfg["alpha"]), "tau": float(distill_cfg["tau"]),
                     "beta": float(distill_cfg["beta"]), "w_fft": float(distill_cfg["w_fft"]),
                     "feature_loss": distill_cfg["feature_loss"], "band_emphasis": distill_cfg["band_emphasis"],
                     "band_strength": float(distill_cfg["band_strength"]), "spatial": distill_cfg["spatial_align"]}
    teacher_model, teacher_norm = teacher
    student_ids = teacher_ids = None
    if uses_feature_term(loss_settings["mode"], loss_settings["beta"], loss_settings["w_fft"]):
        student_ids, teacher_ids = resolve_pairs(distill_cfg["student_ids"], distill_cfg["teacher_ids"],
                                                 distill_cfg["analysis"], num_block_maps(student),
                                                 num_block_maps(teacher_model))
        validate_pairs(student, teacher_model, student_ids, teacher_ids, data.data_cfg["input_size"][-1],
                       spatial=distill_cfg["spatial_align"])
    return SpectralKD(student, teacher_model, student_ids, teacher_ids, criterion=criterion,
                      student_norm=(data.data_cfg["mean"], data.data_cfg["std"]), teacher_norm=teacher_norm,
                      warn=warn, **loss_settings)


def model_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of a student's model RNG stream (dropout, drop-path) in an epoch."""
    return int(seed) * 1_000_003 + EPOCH_SEED_STRIDE * (epoch + 1) + 7919 * (rank + 1)


def train_epochs(students: list[Student], data: DataBundle, command: str,
                 shared: SharedTeacher | None = None) -> list[dict]:
    """Epochs from the students' position to ``epochs`` (or ``stop_after_epoch``); a summary per student. A
    student already further (a cohort killed between two students' checkpoints) waits until the others catch up."""
    cfg, env = students[0].run.cfg, students[0].run.env
    epochs, seed = int(cfg["epochs"]), int(cfg["seed"])
    stop = int(cfg["stop_after_epoch"]) if cfg.get("stop_after_epoch") else epochs
    done = {id(s): s.run.position for s in students}
    if env.is_main:
        for s in students:
            _announce(s, data, command)
    last: dict[int, dict | None] = {id(s): None for s in students}
    monitor = Monitor.start(students, data)  # dynamics.jsonl trimmed to the checkpoints; epoch 0 of new students
    for epoch in range(min(done.values()), min(epochs, stop)):
        active = [s for s in students if done[id(s)] <= epoch]
        seed_everything(seed + EPOCH_SEED_STRIDE * (epoch + 1), env.rank)
        if hasattr(data.sampler, "set_epoch"):
            data.sampler.set_epoch(epoch)
        for s in active:
            s.rng = RngStream(model_seed(seed, epoch, env.rank))
        bar = bool(cfg["progress"]) and env.is_main
        with Progress(active[0].training.steps_per_epoch, f"epoch {epoch + 1}/{epochs}", bar,
                      status_every_s=STATUS_EVERY_S if env.is_main else None) as progress:
            records = train_one_epoch(active, data.train_loader, epoch, progress, shared if len(active) > 1 else None)
        for s, record in zip(active, records):
            if monitor is not None:
                monitor.record(s, epoch + 1)  # before the epoch's checkpoint (see distill/monitor.py)
            last[id(s)] = finish_epoch(s, data, record, epoch, epochs, bar)
            done[id(s)] = epoch + 1
        barrier()
    summaries = []
    for s in students:
        if env.is_main:
            _summary_lines(s, last[id(s)], epochs, command)
        summaries.append({"run_dir": str(s.run.path), "last": last[id(s)], "best": s.best, "epochs": epochs})
    return summaries


def finish_epoch(s: Student, data: DataBundle, record: dict, epoch: int, epochs: int, bar: bool) -> dict:
    """Validation (and, after the last epoch of a holdout run, the one test evaluation), log, checkpoints."""
    t, cfg = s.training, s.run.cfg
    which, top1, top5, net = _validate(t, data.val_loader, cfg, record, bar)
    improved = s.best["top1"] is None or top1 > s.best["top1"]
    if improved:
        s.best = {"top1": top1, "top5": top5, "epoch": epoch + 1, "weights": which}
    if data.test_loader is not None and epoch + 1 == epochs:
        test = evaluate(net, data.test_loader, t.device, t.precision, None, bar, desc="test")
        record.update({"test_top1": test["top1"], "test_top5": test["top5"], "test_weights": which,
                       "test_images": test["images"]})
    record = {"epoch": epoch + 1, **record, "best_top1": s.best["top1"], "best_epoch": s.best["epoch"]}
    s.run.log.write(record)
    card = {**s.card, "weights": which, "top1": top1, "top5": top5, "epoch": epoch + 1, "config": cfg}
    weights = {"best.safetensors": (net.state_dict(), portable(card, s.run.path))} if improved else None
    s.run.save(_training_state(epoch + 1, t, s.best), weights)
    if s.run.env.is_main:
        _epoch_line(s, record, epochs, improved)
    return record


def _validate(t: ClassifierTraining, loader, cfg: dict, record: dict, bar: bool) -> tuple:
    """Evaluate the student (and its EMA) into ``record``; the better of the two is the epoch's candidate:
    (``"model"`` or ``"ema"``, top-1, top-5, its module)."""
    student = t.task.student  # saved as it is; evaluated through the task's (possibly compiled) evaluation model
    val = evaluate(t.task.get_eval_model(), loader, t.device, t.precision, cfg["max_val_batches"], bar, desc="val")
    record.update({"val_top1": val["top1"], "val_top5": val["top5"], "val_loss": val["loss"]})
    candidates = [("model", val["top1"], val["top5"], student)]
    if t.ema is not None:
        ema = evaluate(t.ema.module, loader, t.device, t.precision, cfg["max_val_batches"], bar, desc="val ema")
        record.update({"ema_val_top1": ema["top1"], "ema_val_top5": ema["top5"]})
        candidates.append(("ema", ema["top1"], ema["top5"], t.ema.module))
    return max(candidates, key=lambda c: c[1])


def _announce(s: Student, data: DataBundle, command: str) -> None:
    cfg, t = s.run.cfg, s.training
    what = (f"distilling {cfg['teacher']['name']} → {cfg['model']['name']}" if command == "distill"
            else f"training {cfg['model']['name']}")
    pairs = f", pairs student {t.task.student_layers} ↔ teacher {t.task.teacher_layers}" if t.task.student_layers else ""
    split = (f"{data.num_train} train / {data.num_val} held-out val / {data.num_test} test images" if data.test_loader
             else f"{data.num_train} train / {data.num_val} val images")
    print(f"spectralkd {command}{' [' + s.name + ']' if s.name else ''}: {what} on {cfg['data']['path']} ({split}, "
          f"{len(data.classes)} classes{pairs}), epochs {s.run.position + 1}..{cfg['epochs']}, {t.steps_per_epoch} "
          f"steps/epoch, {s.run.env.world_size} process(es), {t.precision}; run dir {s.run.path}", file=sys.stderr)


def _epoch_line(s: Student, record: dict, epochs: int, improved: bool) -> None:
    ema_note = f" ema {record['ema_val_top1']:.2f}" if s.training.ema is not None else ""
    test_note = f" | test top1 {record['test_top1']:.2f}" if "test_top1" in record else ""
    print(f"{s.name + ': ' if s.name else ''}epoch {record['epoch']}/{epochs}: loss {record['train_loss']:.4f} "
          f"lr {record['lr']:.2e} {record['img_per_s']:.0f} img/s | val top1 {record['val_top1']:.2f} top5 "
          f"{record['val_top5']:.2f}{ema_note}{' (best)' if improved else ''}{test_note}", file=sys.stderr)


def _summary_lines(s: Student, last: dict | None, epochs: int, command: str) -> None:
    path, best, who = s.run.path, s.best, f"spectralkd {command}{' [' + s.name + ']' if s.name else ''}"
    if last is None:
        print(f"{who}: {path} already finished {s.run.position} of {epochs} epochs; nothing to do "
              f"(extend with --resume {path} --set epochs=N)", file=sys.stderr)
        return
    if last["epoch"] < epochs:
        print(f"{who}: stopped after epoch {last['epoch']} of {epochs} (stop_after_epoch); "
              f"continue with --resume {path} --set stop_after_epoch=null", file=sys.stderr)
    test = f"; test top1 {last['test_top1']:.2f} (epoch {last['epoch']}, evaluated once)" if "test_top1" in last else ""
    print(f"{who}: done. last epoch {last['epoch']}: top1 {last['val_top1']:.2f} top5 {last['val_top5']:.2f}; "
          f"best epoch {best['epoch']}: top1 {best['top1']:.2f} ({best['weights']}) → {path / 'best.safetensors'}"
          f"{test}", file=sys.stderr)


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
