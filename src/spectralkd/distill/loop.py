"""One training epoch of the classifier trainer: the :class:`~spectralkd.distill.task.SpectralKD` task's forward
(student maps and logits in one forward, the teacher under no_grad), backward, step, EMA."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
import torch.nn as nn

from spectralkd.distill.task import SpectralKD
from spectralkd.runtime.distributed import all_reduce_sum
from spectralkd.runtime.precision import autocast_ctx
from spectralkd.runtime.progress import Progress
from spectralkd.runtime.run import Run

LOSS_KEYS = ("loss", "loss_ce", "loss_kd", "loss_fft")


@dataclass
class ClassifierTraining:
    """What one classifier run trains with (built by :func:`spectralkd.distill.trainer.build_training`)."""
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


def train_one_epoch(run: Run, t: ClassifierTraining, loader, epoch: int, progress: Progress) -> dict:
    """Train ``t.steps_per_epoch`` steps of epoch ``epoch`` (0-based); returns per-image means and throughput."""
    t.task.train()
    sums = torch.zeros(len(LOSS_KEYS) + 1, dtype=torch.float64)
    start = time.perf_counter()
    lr = t.optimizer.param_groups[0]["lr"]
    for step, (images, labels) in enumerate(loader):
        if step >= t.steps_per_epoch:
            break
        global_step = epoch * t.steps_per_epoch + step
        if t.scheduler is not None:
            t.scheduler.step_update(num_updates=global_step)
        lr = t.optimizer.param_groups[0]["lr"]
        images = images.to(t.device, non_blocking=True)
        targets = labels.to(t.device, non_blocking=True)
        if t.mixup is not None:
            images, targets = t.mixup(images, targets)
        with autocast_ctx(t.device, t.precision):
            out = t.task(images, targets)
        loss = out["loss"]
        run.check_finite(loss, f"epoch {epoch + 1} step {step + 1}", {k: out[k] for k in LOSS_KEYS[1:] if k in out})
        _step(t, loss, global_step)
        n = images.shape[0]
        for i, key in enumerate(LOSS_KEYS):
            if key in out:
                sums[i] += float(out[key].detach()) * n
        sums[-1] += n
        progress.update(1, **({"loss": f"{float(loss.detach()):.4f}", "lr": f"{lr:.2e}"} if step % 10 == 0 else {}))
        progress.status(lambda: f"step {step + 1}/{t.steps_per_epoch}, loss {sums[0].item() / sums[-1].item():.4f}, "
                                f"lr {lr:.2e}, {sums[-1].item() * run.env.world_size / (time.perf_counter() - start):.0f} img/s")
    elapsed = time.perf_counter() - start
    all_reduce_sum(sums)
    count = max(sums[-1].item(), 1.0)
    record = {key: sums[i].item() / count for i, key in enumerate(LOSS_KEYS)}
    record["train_loss"] = record.pop("loss")
    loss_fn = t.task.loss_fn
    if not loss_fn.uses_teacher:
        record.pop("loss_kd"), record.pop("loss_fft")
    elif not loss_fn.uses_logits:
        record.pop("loss_kd")
    record.update({"lr": lr, "images": int(count), "img_per_s": count / elapsed if elapsed > 0 else float("nan"),
                   "train_time_s": elapsed})
    return record


def _step(t: ClassifierTraining, loss: torch.Tensor, global_step: int) -> None:
    t.optimizer.zero_grad(set_to_none=True)
    t.scaler.scale(loss).backward()
    if t.clip_grad:
        t.scaler.unscale_(t.optimizer)
        torch.nn.utils.clip_grad_norm_(t.task.student.parameters(), float(t.clip_grad))
    t.scaler.step(t.optimizer)
    t.scaler.update()
    if t.ema is not None:
        t.ema.update(t.task.student, step=global_step + 1)
