"""Tiled SR inference in bounded memory whose output equals the untiled output.

Each LR tile is run with ``overlap`` pixels of real image context on every side (less at the image border, where
the untiled model sees zero padding too) and only its core is kept. When ``overlap`` is at least the model's
receptive radius (:func:`spectralkd.sr.mdbn.receptive_radius`, 28 LR pixels for MDBN), no kept output pixel sees a
tile edge, so the stitched image equals the whole-image forward pass (up to floating-point summation order).
"""
from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import nn

from spectralkd.errors import UserError
from spectralkd.sr.mdbn import receptive_radius


def _scale_of(model: nn.Module) -> int:
    scale = getattr(model, "upscale", None)
    if scale is None:
        raise UserError(f"model {type(model).__name__} has no 'upscale' attribute; tiling needs the scale")
    return int(scale)


def _tile_starts(length: int, tile: int) -> list[int]:
    return list(range(0, length, tile))


def upscale(model: nn.Module, lr: torch.Tensor, tile: int | None = None, overlap: int | None = None,
            forward=None, on_tile: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Super-resolve ``lr`` (B×C×H×W or C×H×W, float in [0, 1]); ``tile`` LR pixels per tile side (None: whole).

    ``overlap`` defaults to the model's receptive radius; a smaller value is allowed but warns that tile seams
    may differ from the untiled output. ``forward`` replaces ``model(x)`` (e.g. an
    :class:`~spectralkd.sr.inference.InferenceUpscaler`). ``on_tile(done, total)`` is called after each tile.
    Runs under the caller's grad mode; wrap in ``torch.inference_mode()`` for inference.
    """
    forward_fn = forward or model
    squeeze = lr.ndim == 3
    x = lr.unsqueeze(0) if squeeze else lr
    if x.ndim != 4:
        raise UserError(f"upscale expects a C×H×W or B×C×H×W tensor, got shape {tuple(lr.shape)}")
    if tile is None:
        out = forward_fn(x)
        return out.squeeze(0) if squeeze else out
    tile = int(tile)
    if tile < 1:
        raise UserError(f"tile size must be a positive number of LR pixels, got {tile}")
    rf = receptive_radius(model)
    overlap = rf if overlap is None else int(overlap)
    if overlap < 0:
        raise UserError(f"tile overlap must be ≥ 0, got {overlap}")
    if overlap < rf:
        warnings.warn(f"tile overlap {overlap} < receptive radius {rf}: tiled output will differ at tile seams",
                      stacklevel=2)
    s = _scale_of(model)
    b, _, h, w = x.shape
    out = None
    starts = [(y, x0) for y in _tile_starts(h, tile) for x0 in _tile_starts(w, tile)]
    for done, (y, x0) in enumerate(starts, 1):
        y1, x1 = min(y + tile, h), min(x0 + tile, w)
        iy0, ix0 = max(0, y - overlap), max(0, x0 - overlap)
        iy1, ix1 = min(h, y1 + overlap), min(w, x1 + overlap)
        piece = forward_fn(x[:, :, iy0:iy1, ix0:ix1])
        if out is None:
            out = piece.new_empty((b, piece.shape[1], h * s, w * s))
        oy, ox = (y - iy0) * s, (x0 - ix0) * s
        out[:, :, y * s: y1 * s, x0 * s: x1 * s] = piece[:, :, oy: oy + (y1 - y) * s, ox: ox + (x1 - x0) * s]
        if on_tile is not None:
            on_tile(done, len(starts))
    return out.squeeze(0) if squeeze else out
