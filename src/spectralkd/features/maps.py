"""B×C×H×W feature maps out of models.

timm models with ``forward_intermediates`` (ViT/DeiT: the patch tokens of each block, prefix tokens dropped;
CaiT: the self-attention blocks; CNN and other stage models — ResNet, RegNet, ConvNeXt, Swin: the entries of
``feature_info``, i.e. the stem (ResNet/RegNet) and every stage output, always NCHW) and any ``nn.Module`` by
module names through forward hooks (token sequences reshaped to square maps; 4-D outputs of models that declare
``output_fmt = "NHWC"``, like timm's Swin, are read as NHWC except those of ``nn.Conv2d`` modules).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn

from spectralkd.errors import UserError


def _base(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model) if isinstance(model, nn.parallel.DistributedDataParallel) else model


def num_block_maps(model: nn.Module) -> int:
    """How many maps ``block_maps`` can return (blocks for ViT/CaiT, stages for Swin/ConvNeXt)."""
    model = _base(model)
    if not hasattr(model, "forward_intermediates"):
        raise UserError(f"{type(model).__name__} has no forward_intermediates; name its modules instead (--layers)")
    info = getattr(model, "feature_info", None)
    if info:
        return len(info)
    for attr in ("blocks", "layers", "stages"):
        if isinstance(getattr(model, attr, None), (nn.Sequential, nn.ModuleList)):
            return len(getattr(model, attr))
    raise UserError(f"cannot tell how many blocks {type(model).__name__} has")


def map_names(model: nn.Module) -> list[str]:
    """The module behind each map ``block_maps`` returns: ``feature_info`` names (``stem``, ``s1``, ``layers.0``, ...)
    for stage models, ``blocks.i`` otherwise."""
    model = _base(model)
    n = num_block_maps(model)
    info = getattr(model, "feature_info", None)
    if info and len(info) == n and all(isinstance(i, dict) and i.get("module") for i in info):
        return [str(i["module"]) for i in info]
    for attr in ("blocks", "layers", "stages"):
        if isinstance(getattr(model, attr, None), (nn.Sequential, nn.ModuleList)) and len(getattr(model, attr)) == n:
            return [f"{attr}.{i}" for i in range(n)]
    return [f"block {i}" for i in range(n)]


def resolve_indices(indices: Sequence[int] | None, count: int, what: str = "layer") -> list[int]:
    """Absolute indices; negative ones count from the end; out of range → error naming the valid range."""
    if indices is None:
        return list(range(count))
    out = []
    for i in indices:
        j = int(i) + count if int(i) < 0 else int(i)
        if not 0 <= j < count:
            raise UserError(f"{what} index {i} is out of range; valid: 0..{count - 1} (or -{count}..-1)")
        out.append(j)
    return out


def intermediates_and_final(model: nn.Module, images: torch.Tensor, indices: Sequence[int] | None = None):
    """One forward: (final features for ``forward_head``, list of NCHW maps at ``indices``)."""
    base = _base(model)
    take = resolve_indices(indices, num_block_maps(base))
    final, maps = base.forward_intermediates(images, indices=sorted(set(take)), output_fmt="NCHW")
    by_index = dict(zip(sorted(set(take)), maps))
    return final, [by_index[i] for i in take]


def block_maps(model: nn.Module, images: torch.Tensor, indices: Sequence[int] | None = None) -> list[torch.Tensor]:
    """Block (or stage) outputs of a timm model as B×C×H×W maps, in the order of ``indices`` (all when None)."""
    base = _base(model)
    take = resolve_indices(indices, num_block_maps(base))
    uniq = sorted(set(take))
    maps = base.forward_intermediates(images, indices=uniq, output_fmt="NCHW", intermediates_only=True)
    by_index = dict(zip(uniq, maps))
    return [by_index[i] for i in take]


def tokens_to_map(t: torch.Tensor, num_prefix_tokens: int | None = None, name: str = "output") -> torch.Tensor:
    """B×N×C tokens → B×C×H×W, dropping prefix (class/distillation) tokens so that N−prefix is a square."""
    if t.dim() == 4:
        return t
    if t.dim() != 3:
        raise UserError(f"{name} has shape {tuple(t.shape)}; expected B×N×C tokens or B×C×H×W maps")
    n = t.shape[1]
    candidates = [num_prefix_tokens] if num_prefix_tokens is not None else [0, 1, 2, 4, 8]
    for prefix in candidates:
        side = math.isqrt(n - prefix) if n - prefix > 0 else 0
        if side * side == n - prefix and side > 0:
            b, _, c = t.shape
            return t[:, prefix:].reshape(b, side, side, c).permute(0, 3, 1, 2).contiguous()
    raise UserError(f"{name} has {n} tokens, which minus the prefix tokens is not a square number of patches")


def module_maps(model: nn.Module, images: torch.Tensor, names: Sequence[str], nhwc: bool | None = None,
                with_output: bool = False):
    """Outputs of the named sub-modules as B×C×H×W maps, via forward hooks (the forward is unchanged).

    3-D outputs are token sequences (reshaped to square maps, prefix tokens dropped); 4-D outputs are NCHW unless
    ``nhwc`` — which by default (None) is true for models declaring ``output_fmt = "NHWC"`` (timm's Swin), except for
    ``nn.Conv2d`` outputs. With ``with_output`` returns ``(model_output, maps)``.
    """
    base = _base(model)
    check_module_names(base, names)
    modules = dict(base.named_modules())
    model_nhwc = str(getattr(base, "output_fmt", "NCHW")) == "NHWC"
    captured: dict[str, torch.Tensor] = {}
    prefix = getattr(base, "num_prefix_tokens", None)

    def hook_for(name):
        def hook(_module, _inputs, output):
            out = output[0] if isinstance(output, (tuple, list)) else output
            captured[name] = out

        return hook

    handles = [modules[n].register_forward_hook(hook_for(n)) for n in dict.fromkeys(names)]
    try:
        output = model(images)
    finally:
        for handle in handles:
            handle.remove()
    maps = []
    for n in names:
        t = captured[n]
        as_nhwc = nhwc if nhwc is not None else model_nhwc and not isinstance(modules[n], nn.Conv2d)
        if t.dim() == 4 and as_nhwc:
            t = t.permute(0, 3, 1, 2)
        maps.append(tokens_to_map(t, prefix, name=f"module '{n}'"))
    return (output, maps) if with_output else maps


def is_module_names(layers) -> bool:
    """Layers given as module names (``["layer2", "blocks.3.mlp"]``) rather than block/stage indices."""
    return isinstance(layers, (list, tuple)) and bool(layers) and all(isinstance(i, str) for i in layers)


def take_maps(model: nn.Module, images: torch.Tensor, ids: Sequence[int] | Sequence[str]) -> list[torch.Tensor]:
    """Maps at block/stage indices (``block_maps``) or at named modules (``module_maps``), one forward."""
    return module_maps(model, images, list(ids)) if is_module_names(ids) else block_maps(model, images, ids)


def check_module_names(model: nn.Module, names: Sequence[str]) -> None:
    modules = dict(_base(model).named_modules())
    missing = [n for n in names if n not in modules]
    if missing:
        sample = ", ".join(n for n in list(modules)[1:8])
        raise UserError(f"module '{missing[0]}' is not in {type(_base(model)).__name__}; module names look like: "
                        f"{sample}, ...")


class MapsAndLogits(nn.Module):
    """Wraps a model so one ``forward`` returns ``(logits, maps at layers)``.

    ``layers``: block indices of a timm model (through ``forward_intermediates``, negative ones count from the end),
    or module names of any ``nn.Module`` (forward hooks; token outputs become maps); ``None``/empty: no maps.
    Wrap this (not the bare model) in DDP so gradient synchronisation sees the whole forward.
    """

    def __init__(self, model: nn.Module, layers: Sequence[int | str] | None):
        super().__init__()
        self.model = model
        self.names = list(layers) if is_module_names(layers) else None
        if self.names:
            check_module_names(model, self.names)
            self.indices = None
        else:
            self.indices = resolve_indices(layers, num_block_maps(model)) if layers else None

    @property
    def layers(self) -> list[int | str]:
        return self.names or self.indices or []

    def forward(self, images: torch.Tensor):
        if self.names:
            return module_maps(self.model, images, self.names, with_output=True)
        if not self.indices:
            return self.model(images), []
        final, maps = intermediates_and_final(self.model, images, self.indices)
        return self.model.forward_head(final), maps
