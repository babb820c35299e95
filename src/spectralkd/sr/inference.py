"""The tuned inference path: inference mode, channels-last memory, optional bf16 autocast and torch.compile."""
from __future__ import annotations

import contextlib

import torch
from torch import nn

from spectralkd.errors import UserError, one_line


class Tuned:
    """``Tuned(model)(lr)``: the model in eval mode with channels-last weights, run under ``torch.inference_mode``
    with channels-last inputs, optionally in bf16 (autocast) and/or compiled. Output is float32, contiguous."""

    def __init__(self, model: nn.Module, channels_last: bool = True, bf16: bool = False, compile: bool = False):
        self.model = model.eval()
        self.channels_last, self.bf16 = channels_last, bf16
        self.device = next(model.parameters()).device
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.fn = self.model
        if compile:
            try:
                self.fn = torch.compile(self.model, dynamic=True)
            except Exception as exc:  # no compiler toolchain etc.
                raise UserError(f"torch.compile is not available here: {one_line(exc, 160)}") from None

    def _autocast(self):
        if not self.bf16:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), self._autocast():
            x = lr.to(self.device)
            if self.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            out = self.fn(x)
        return out.float().contiguous()
