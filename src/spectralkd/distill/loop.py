"""One training epoch of the classifier trainer for one student or a cohort of students.

Every batch is drawn and augmented once; with a teacher, it runs once (under no_grad) for all students — the
union of the layers they align — and each student then takes its own step through its
:class:`~spectralkd.distill.task.SpectralKD` task, inside its own RNG stream. The data pipeline uses the global RNG
only, so a student's steps are the same whether it trains alone or in a cohort.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from timm.utils.model import unwrap_model

from spectralkd.distill.task import SpectralKD, TeacherForward
from spectralkd.runtime.distributed import all_reduce_sum
from spectralkd.runtime.precision import autocast_ctx
from spectralkd.runtime.progress import Progress
from spectralkd.runtime.rng import RngStream
from spectralkd.runtime.run import Run

LOSS_KEYS = ("loss", "loss_ce", "loss_kd", "loss_fft")


@dataclass
class ClassifierTraining:
    """What one student trains with (built by :func:`spectralkd.distill.trainer.build_training`)."""
    task: SpectralKD              # student (+ teacher) and the objective; its trainable part may be DDP-wrapped
    optimizer: torch.optim.Optimizer
    scheduler: object             # a timm scheduler stepped per update
    scaler: torch.amp.GradScaler
    ema: nn.Module | None         # timm ModelEmaV3 of the bare student
    mixup: object | None
    device: torch.device
    precision: str
    clip_grad: float | None
    steps_per_epoch: int


@dataclass
class Student:
    """One student of a cohort (a solo run is a cohort of one): its run folder, training objects, model card's fixed
    part, best-so-far record and model RNG stream."""
    name: str
    run: Run
    training: ClassifierTraining
    card: dict
    best: dict = field(default_factory=lambda: {"top1": None, "epoch": None})
    rng: RngStream | None = None
    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(len(LOSS_KEYS) + 1, dtype=torch.float64))


class SharedTeacher:
    """One teacher pass per batch for a cohort: logits and the maps at the union of the students' teacher layers."""

    def __init__(self, students: list[Student], compile: bool = False):
        tasks = [s.training.task for s in students]
        first = next(t for t in tasks if t.teacher is not None)
        self.layers = sorted({layer for t in tasks for layer in t.teacher_layers}, key=str)
        self.forward = TeacherForward(unwrap_model(first.teacher.net).model, self.layers or None, first.teacher.renorm)
        if compile:
            self.forward.net = torch.compile(self.forward.net)

    def __call__(self, images: torch.Tensor) -> dict:
        logits, maps = self.forward(images)
        return {"logits": logits, "maps": dict(zip(self.layers, maps))}

    @staticmethod
    def for_task(task: SpectralKD, shared: dict) -> tuple:
        return shared["logits"], [shared["maps"][layer] for layer in task.teacher_layers]


def train_one_epoch(students: list[Student], loader, epoch: int, progress: Progress,
                    shared_teacher: SharedTeacher | None = None) -> list[dict]:
    """Train every student ``steps_per_epoch`` steps of epoch ``epoch`` (0-based) on the same batches; returns each
    one's per-image loss means, learning rate and throughput (img/s counts the whole cohort's wall time)."""
    first = students[0].training
    for s in students:
        s.training.task.train()
        s.sums.zero_()
    start = time.perf_counter()
    for step, (images, labels) in enumerate(loader):
        if step >= first.steps_per_epoch:
            break
        images = images.to(first.device, non_blocking=True)
        targets = labels.to(first.device, non_blocking=True)
        if first.mixup is not None:
            images, targets = first.mixup(images, targets)
        shared = None
        if shared_teacher is not None:
            with autocast_ctx(first.device, first.precision):
                shared = shared_teacher(images)
        for s in students:
            with s.rng:
                loss = _student_step(s, images, targets, epoch, step, shared)
        progress.update(1, **({"loss": f"{loss:.4f}"} if step % 10 == 0 else {}))
        progress.status(lambda: f"step {step + 1}/{first.steps_per_epoch}, loss {students[0].sums[0].item() / max(students[0].sums[-1].item(), 1):.4f}, "
                                f"{students[0].sums[-1].item() * students[0].run.env.world_size / (time.perf_counter() - start):.0f} img/s")
    elapsed = time.perf_counter() - start
    return [_epoch_record(s, elapsed) for s in students]


def _student_step(s: Student, images, targets, epoch: int, step: int, shared: dict | None) -> float:
    t = s.training
    global_step = epoch * t.steps_per_epoch + step
    if t.scheduler is not None:
        t.scheduler.step_update(num_updates=global_step)
    teacher_out = SharedTeacher.for_task(t.task, shared) if shared is not None and t.task.teacher is not None else None
    with autocast_ctx(t.device, t.precision):
        out = t.task(images, targets, teacher_out=teacher_out)
    loss = out["loss"]
    where = f"epoch {epoch + 1} step {step + 1}" + (f" (student {s.name})" if s.name else "")
    s.run.check_finite(loss, where, {k: out[k] for k in LOSS_KEYS[1:] if k in out})
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(loss).backward()
    if t.clip_grad:
        t.scaler.unscale_(t.optimizer)
        torch.nn.utils.clip_grad_norm_(t.task.student.parameters(), float(t.clip_grad))
    t.scaler.step(t.optimizer)
    t.scaler.update()
    if t.ema is not None:
        t.ema.update(t.task.student, step=global_step + 1)
    n = images.shape[0]
    for i, key in enumerate(LOSS_KEYS):
        if key in out:
            s.sums[i] += float(out[key].detach()) * n
    s.sums[-1] += n
    return float(loss.detach())


def _epoch_record(s: Student, elapsed: float) -> dict:
    t = s.training
    sums = all_reduce_sum(s.sums.clone())
    count = max(sums[-1].item(), 1.0)
    record = {key: sums[i].item() / count for i, key in enumerate(LOSS_KEYS)}
    record["train_loss"] = record.pop("loss")
    loss_fn = t.task.loss_fn
    if not loss_fn.uses_teacher:
        record.pop("loss_kd"), record.pop("loss_fft")
    elif not loss_fn.uses_logits:
        record.pop("loss_kd")
    record.update({"lr": t.optimizer.param_groups[0]["lr"], "images": int(count),
                   "img_per_s": count / elapsed if elapsed > 0 else float("nan"), "train_time_s": elapsed})
    return record
