"""MATLAB-compatible bicubic ``imresize`` (torch), the degradation and baseline of SR papers.

Follows MATLAB's ``imresize(..., 'bicubic')``: cubic convolution kernel with a = -0.5; when shrinking, the kernel
is stretched by 1/scale (antialiasing); output pixel x (1-based) samples input position
``u = x/scale + 0.5·(1 - 1/scale)``; taps ``floor(u - width/2) + (0 .. ceil(width)+1)``; weights normalised to
sum to one; out-of-range taps are mirrored symmetrically (``1..n, n..1``). Height is resized before width
(MATLAB's order for equal scales). For uint8 images MATLAB rounds after each pass; :func:`imresize_uint8`
does the same.
"""
from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from spectralkd.errors import UserError


def cubic(x: np.ndarray, a: float = -0.5) -> np.ndarray:
    """Keys' cubic convolution kernel (MATLAB uses a = -0.5)."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    inner = (a + 2) * ax3 - (a + 3) * ax2 + 1
    outer = a * ax3 - 5 * a * ax2 + 8 * a * ax - 4 * a
    return inner * (ax <= 1) + outer * ((ax > 1) & (ax <= 2))


def contributions(in_len: int, out_len: int, scale: float, antialiasing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's weights and (0-based, mirrored) indices, each of shape out_len × taps."""
    width = 4.0
    if scale < 1 and antialiasing:
        kernel = lambda x: scale * cubic(scale * x)  # noqa: E731
        width = width / scale
    else:
        kernel = cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - width / 2)
    taps = int(math.ceil(width)) + 2
    idx = left[:, None] + np.arange(taps)[None, :]  # 1-based
    weights = kernel(u[:, None] - idx)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    return weights, idx


@lru_cache(maxsize=64)
def _matrix(in_len: int, out_len: int, scale: float, antialiasing: bool) -> np.ndarray:
    """The resize as a dense out_len × in_len matrix (mirrored taps accumulate)."""
    weights, idx = contributions(in_len, out_len, scale, antialiasing)
    mat = np.zeros((out_len, in_len), dtype=np.float64)
    rows = np.repeat(np.arange(out_len), weights.shape[1])
    np.add.at(mat, (rows, idx.ravel()), weights.ravel())
    return mat


def _out_size(in_len: int, scale: float) -> int:
    return int(math.ceil(in_len * scale - 1e-9))


def _check(img: torch.Tensor, scale: float) -> None:
    if not isinstance(img, torch.Tensor) or img.ndim < 2:
        raise UserError(f"imresize expects a tensor of shape (..., H, W), got {type(img).__name__}")
    if not scale > 0:
        raise UserError(f"imresize scale must be positive, got {scale}")


def _resize_dim(img: torch.Tensor, dim: int, out_len: int, scale: float, antialiasing: bool) -> torch.Tensor:
    mat = torch.from_numpy(_matrix(img.shape[dim], out_len, float(scale), antialiasing)).to(img.dtype)
    if dim == -2:
        return torch.matmul(mat.to(img.device), img)
    return torch.matmul(img, mat.to(img.device).T)


def imresize(img: torch.Tensor, scale: float, antialiasing: bool = True) -> torch.Tensor:
    """Resize a float tensor (..., H, W) by ``scale`` like MATLAB (no rounding; dtype kept, float64 allowed).

    Output size is ``ceil(scale·H) × ceil(scale·W)``.
    """
    _check(img, scale)
    if not img.is_floating_point():
        raise UserError(f"imresize expects a float tensor, got {img.dtype}; use imresize_uint8 for 8-bit images")
    h, w = img.shape[-2:]
    out = _resize_dim(img, -2, _out_size(h, scale), scale, antialiasing)
    return _resize_dim(out, -1, _out_size(w, scale), scale, antialiasing)


def to_uint8(img: torch.Tensor) -> torch.Tensor:
    """Round half away from zero and saturate to [0, 255] (MATLAB's conversion to uint8)."""
    rounded = torch.sign(img) * torch.floor(torch.abs(img) + 0.5)
    return rounded.clamp(0, 255).to(torch.uint8)


def imresize_uint8(img: torch.Tensor, scale: float, antialiasing: bool = True) -> torch.Tensor:
    """MATLAB ``imresize`` of a uint8 image (..., H, W): float64 passes, rounded to uint8 after each pass."""
    _check(img, scale)
    if img.dtype != torch.uint8:
        raise UserError(f"imresize_uint8 expects a uint8 tensor, got {img.dtype}")
    h, w = img.shape[-2:]
    out = to_uint8(_resize_dim(img.to(torch.float64), -2, _out_size(h, scale), scale, antialiasing))
    return to_uint8(_resize_dim(out.to(torch.float64), -1, _out_size(w, scale), scale, antialiasing))
