"""SpectralKD for super-resolution: an MDBN teacher distils a slimmer MDBN (fewer features/blocks).

Loss = L1(student SR, HR) + β · ``spectral_alignment_loss`` over paired residual-block outputs (``body.i``).
Student block i is paired with the teacher block at the same relative depth (``round((i+1)·Nt/Ns) − 1``);
the wider map is average-pooled over channels to the narrower width by the shared loss.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from spectralkd.distill.losses import spectral_alignment_loss
from spectralkd.errors import UserError
from spectralkd.features.maps import module_maps


def num_body_blocks(model: nn.Module) -> int:
    body = getattr(model, "body", None)
    if not isinstance(body, nn.Sequential) or not len(body):
        raise UserError(f"model {type(model).__name__} has no residual body (body.0, body.1, ...)")
    return len(body)


def default_pairs(n_student: int, n_teacher: int) -> tuple[list[int], list[int]]:
    """Every student block, each with the teacher block at the same relative depth."""
    s_ids = list(range(n_student))
    return s_ids, [max(0, round((i + 1) * n_teacher / n_student) - 1) for i in s_ids]


def check_ids(ids: Sequence[int], count: int, who: str) -> list[int]:
    out = [int(i) for i in ids]
    bad = [i for i in out if not 0 <= i < count]
    if bad:
        raise UserError(f"{who} block id {bad[0]} is out of range; the model has body.0..body.{count - 1}")
    return out


class SRWithMaps(nn.Module):
    """One forward returning ``(sr, [body.i outputs])``; wrap this in DDP so synchronisation sees the maps."""

    def __init__(self, model: nn.Module, block_ids: Sequence[int]):
        super().__init__()
        self.model = model
        self.names = [f"body.{i}" for i in check_ids(block_ids, num_body_blocks(model), "student")]

    @property
    def upscale(self) -> int:
        return self.model.upscale

    def forward(self, lr: torch.Tensor):
        if not self.names:
            return self.model(lr), []
        return module_maps(self.model, lr, self.names, with_output=True)


class SRDistillLoss(nn.Module):
    """``L1(sr, hr) + beta · spectral_alignment_loss(student maps, teacher maps)``; returns (loss, parts)."""

    def __init__(self, beta: float = 0.1):
        super().__init__()
        self.beta = float(beta)

    def forward(self, sr, hr, s_maps=(), t_maps=()):
        l1 = F.l1_loss(sr, hr)
        parts = {"loss_l1": l1.detach()}
        if s_maps:
            spec = spectral_alignment_loss(list(s_maps), [t.detach() for t in t_maps])
            parts["loss_fft"] = spec.detach()
            loss = l1 + self.beta * spec
        else:
            loss = l1
        parts["loss"] = loss.detach()
        return loss, parts
