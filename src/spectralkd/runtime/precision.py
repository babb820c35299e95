"""Mixed precision: bf16 autocast on CPU, fp16/bf16 on GPU (fp16 with a gradient scaler)."""
from __future__ import annotations

import contextlib

import torch

from spectralkd.errors import UserError

PRECISIONS = ("fp32", "bf16", "fp16")


def check_precision(device: torch.device, precision: str) -> str:
    if precision not in PRECISIONS:
        raise UserError(f"precision '{precision}' is not supported; allowed: {', '.join(PRECISIONS)}")
    if precision == "fp16" and device.type != "cuda":
        raise UserError("precision 'fp16' needs a CUDA device; on CPU use bf16 or fp32")
    return precision


def autocast_ctx(device: torch.device, precision: str):
    """Context manager for the forward pass at ``precision`` (a no-op for fp32)."""
    check_precision(device, precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """A gradient scaler, enabled only for fp16 (bf16 and fp32 need none); always has a state_dict."""
    return torch.amp.GradScaler(device.type, enabled=(precision == "fp16" and device.type == "cuda"))
