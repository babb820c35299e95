"""Preprocessing from timm's data config for a model, with user overrides."""
from __future__ import annotations

from typing import Any

import torch.nn as nn
from timm.data import create_transform, resolve_data_config

from spectralkd.errors import UserError

OVERRIDE_KEYS = ("input_size", "mean", "std", "interpolation", "crop_pct", "crop_mode")


def model_input_size(model: nn.Module) -> int | None:
    """The square input size a model was built for (e.g. a ViT created with ``img_size=32``), if it has one.

    timm's data config reports the pretrained size (224) even when the model was created for another size.
    """
    pe = getattr(model, "patch_embed", None)
    size = getattr(pe, "img_size", None)
    if getattr(pe, "dynamic_img_size", False) or not size:
        return None
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    return int(size[0]) if size[0] == size[1] else None


def data_config(model: nn.Module | None = None, input_size: int | None = None, **overrides: Any) -> dict:
    """timm's data config for ``model`` (resize, crop, normalisation), with ``input_size``/overrides applied.

    ``input_size`` is the square side in pixels (default: the size the model was built for, see
    :func:`model_input_size`); ``None`` values in overrides are ignored.
    """
    if input_size is None and model is not None:
        input_size = model_input_size(model)
    args = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(args) - set(OVERRIDE_KEYS)
    if unknown:
        raise UserError(f"unknown data config key(s) {sorted(unknown)}; allowed: {', '.join(OVERRIDE_KEYS)}")
    if input_size is not None:
        if int(input_size) <= 0:
            raise UserError(f"input size must be a positive number of pixels, got {input_size}")
        args["input_size"] = (3, int(input_size), int(input_size))
    for key in ("mean", "std"):
        if key in args:
            value = tuple(float(v) for v in args[key])
            if len(value) != 3:
                raise UserError(f"{key} must have 3 values (R, G, B), got {list(value)}")
            args[key] = value
    cfg = resolve_data_config(args=args, model=model)
    return cfg


def eval_transform(cfg: dict):
    """Resize, centre crop, to tensor, normalise — as timm evaluates."""
    return create_transform(
        input_size=cfg["input_size"], is_training=False, interpolation=cfg.get("interpolation", "bicubic"),
        mean=cfg["mean"], std=cfg["std"], crop_pct=cfg.get("crop_pct", 1.0), crop_mode=cfg.get("crop_mode", "center"),
    )
