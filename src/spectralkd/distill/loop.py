"""One training epoch: student maps + logits in one forward, teacher under no_grad, loss, step, EMA."""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
from tqdm import tqdm

from spectralkd.runtime.precision import autocast_ctx
from spectralkd.runtime.distributed import all_reduce_sum
from spectralkd.distill.losses import SpectralKDLoss
from spectralkd.errors import UserError


class NonFiniteLoss(UserError):
    """The loss became NaN/inf; the run stops and the last checkpoint stays as it was."""


@dataclass
class StepParts:
    student: nn.Module            # MapsAndLogits(student), possibly wrapped in DDP
    bare: nn.Module               # the bare student (for EMA and clipping)
    teacher: nn.Module | None     # TeacherForward or None
    criterion: SpectralKDLoss
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    ema: nn.Module | None
    mixup: object | None
    device: torch.device
    precision: str
    clip_grad: float | None
    world_size: int = 1


def train_one_epoch(p: StepParts, loader, epoch: int, steps_per_epoch: int, progress: bool = False,
                    desc: str = "train", status_every_s: float | None = None) -> dict:
    """Train for ``steps_per_epoch`` steps of epoch ``epoch`` (0-based); returns per-image means and throughput.

    ``status_every_s``: without a progress bar, print a one-line status this often (for background runs' logs).
    """
    p.student.train()
    keys = ("loss", "loss_ce", "loss_kd", "loss_fft")
    sums = torch.zeros(len(keys) + 1, dtype=torch.float64)
    bar = tqdm(total=steps_per_epoch, desc=desc, leave=False, disable=not progress, file=sys.stderr, mininterval=1.0)
    start = time.perf_counter()
    lr = p.optimizer.param_groups[0]["lr"]
    last_status = start
    try:
        for step, (images, labels) in enumerate(loader):
            if step >= steps_per_epoch:
                break
            global_step = epoch * steps_per_epoch + step
            if p.scheduler is not None:
                p.scheduler.step_update(num_updates=global_step)
            lr = p.optimizer.param_groups[0]["lr"]
            images = images.to(p.device, non_blocking=True)
            labels = labels.to(p.device, non_blocking=True)
            targets = labels
            if p.mixup is not None:
                images, targets = p.mixup(images, labels)
            t_logits, t_maps = None, []
            with autocast_ctx(p.device, p.precision):
                logits, s_maps = p.student(images)
                if p.teacher is not None:
                    t_logits, t_maps = p.teacher(images)
            loss, parts = p.criterion(logits, targets, t_logits, s_maps, t_maps)
            _check_finite(loss, parts, epoch, step, p.world_size)
            p.optimizer.zero_grad(set_to_none=True)
            p.scaler.scale(loss).backward()
            if p.clip_grad:
                p.scaler.unscale_(p.optimizer)
                torch.nn.utils.clip_grad_norm_(p.bare.parameters(), float(p.clip_grad))
            p.scaler.step(p.optimizer)
            p.scaler.update()
            if p.ema is not None:
                p.ema.update(p.bare, step=global_step + 1)
            n = images.shape[0]
            for i, key in enumerate(keys):
                if key in parts:
                    sums[i] += float(parts[key]) * n
            sums[-1] += n
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{float(parts['loss']):.4f}", lr=f"{lr:.2e}")
            now = time.perf_counter()
            if status_every_s and now - last_status >= status_every_s:
                last_status = now
                print(f"{desc}: step {step + 1}/{steps_per_epoch}, loss {sums[0].item() / sums[-1].item():.4f}, "
                      f"lr {lr:.2e}, {sums[-1].item() * p.world_size / (now - start):.0f} img/s", file=sys.stderr,
                      flush=True)
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    all_reduce_sum(sums)
    count = max(sums[-1].item(), 1.0)
    out = {key: sums[i].item() / count for i, key in enumerate(keys)}
    out["train_loss"] = out.pop("loss")
    if p.teacher is None:
        out.pop("loss_kd"), out.pop("loss_fft")
    elif not p.criterion.uses_logits:
        out.pop("loss_kd")
    out.update({"lr": lr, "images": int(count), "img_per_s": count / elapsed if elapsed > 0 else float("nan"),
                "train_time_s": elapsed})
    return out


def _check_finite(loss: torch.Tensor, parts: dict, epoch: int, step: int, world_size: int) -> None:
    bad = torch.tensor([0.0 if torch.isfinite(loss.detach()).all() else 1.0])
    if world_size > 1:
        all_reduce_sum(bad)  # every process stops together
    if bad.item() > 0:
        detail = ", ".join(f"{k}={float(v):.4g}" for k, v in parts.items() if k != "loss")
        raise NonFiniteLoss(f"loss became non-finite ({float(loss.detach()):.4g}; {detail}) at epoch {epoch + 1} step {step + 1}; run stopped, "
                            "the last checkpoint is left as it was; lower optim.lr or set optim.clip_grad")
