"""Comparing per-layer curves of two models of different depth (e.g. teacher and student intensity curves).

Layer i of an L-layer curve sits at relative depth ``i / (L - 1)`` (a single layer at 0). Both curves are
linearly interpolated onto a common grid of relative depths (as many points as the longer curve) and then
compared: Pearson correlation of the shapes, mean absolute distance of the values.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from spectralkd.errors import UserError


def relative_depth(n: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)


def resample_curve(values: Sequence[float], points: int) -> np.ndarray:
    """Values at relative depths ``linspace(0, 1, points)``, linearly interpolated."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if v.size == 0:
        raise UserError("cannot resample an empty per-layer curve")
    if not np.all(np.isfinite(v)):
        raise UserError("per-layer curve has NaN or infinite values")
    if v.size == 1:
        return np.full(points, v[0])
    return np.interp(relative_depth(points), relative_depth(v.size), v)


def _common(a: Sequence[float], b: Sequence[float], points: int | None) -> tuple[np.ndarray, np.ndarray]:
    n = points or max(len(a), len(b))
    return resample_curve(a, n), resample_curve(b, n)


def curve_correlation(a: Sequence[float], b: Sequence[float], points: int | None = None) -> float:
    """Pearson correlation of two per-layer curves at common relative depth; NaN if either curve is constant."""
    x, y = _common(a, b, points)
    if x.size < 2:
        return math.nan
    xs, ys = x - x.mean(), y - y.mean()
    denom = math.sqrt(float((xs ** 2).sum()) * float((ys ** 2).sum()))
    return float((xs * ys).sum()) / denom if denom > 0 else math.nan


def mean_layer_distance(a: Sequence[float], b: Sequence[float], points: int | None = None) -> float:
    """Mean absolute difference of two per-layer curves at common relative depth."""
    x, y = _common(a, b, points)
    return float(np.abs(x - y).mean())
