"""Device choice: ``auto`` picks this process's CUDA device when there is one, else the CPU."""
from __future__ import annotations

import torch

from spectralkd.errors import UserError


def pick_device(request: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto`` → this process's CUDA device when available, else CPU; ``cpu``/``cuda``/``cuda:N`` as asked."""
    if request in (None, "", "auto"):
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    if request.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device '{request}' requested but CUDA is not available; use --set device=cpu")
        if request == "cuda":
            return torch.device(f"cuda:{local_rank}")
    try:
        return torch.device(request)
    except RuntimeError:
        raise UserError(f"unknown device '{request}'; allowed: auto, cpu, cuda, cuda:N") from None
