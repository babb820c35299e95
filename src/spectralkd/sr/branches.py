"""Deep- and shallow-branch maps of every MDBN base block, captured with forward hooks (forward unchanged)."""
from __future__ import annotations

import torch

from spectralkd.errors import UserError
from spectralkd.features.maps import module_maps
from spectralkd.sr.mdbn import BaseBlock


def base_block_names(model: torch.nn.Module) -> list[str]:
    """Qualified names of the base blocks in forward order (``body.0.baseblock1``, ``body.0.baseblock2``, ...)."""
    names = [n for n, m in model.named_modules() if isinstance(m, BaseBlock)]
    if not names:
        raise UserError(f"model {type(model).__name__} has no MDBN base blocks (uconv1/uconv2/dconv)")
    return names


def branch_maps(model: torch.nn.Module, lr: torch.Tensor) -> list[dict]:
    """Per base block ``{"name", "deep", "shallow"}``: the deep branch output (uconv2, before the sum and GELU)
    and the shallow branch output (dconv), each B×C×H×W, from one forward pass without gradients."""
    blocks = base_block_names(model)
    names = [f"{b}.{c}" for b in blocks for c in ("uconv2", "dconv")]
    with torch.no_grad():
        maps = module_maps(model, lr, names)
    return [{"name": b, "deep": maps[2 * i], "shallow": maps[2 * i + 1]} for i, b in enumerate(blocks)]
