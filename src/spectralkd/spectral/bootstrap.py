"""Percentile bootstrap intervals over images for the per-layer measures (vectorised, deterministic for a seed).

What is resampled: the analysed images. One bootstrap resample draws n image indices with replacement
(``numpy.random.Generator.integers(0, n, (B, n))``, the draw ``scipy.stats.bootstrap`` makes); the same resamples
serve every layer and every measure (images are the unit, so the layers' values stay paired). Every measure is a
function of means over images of per-image values (:func:`spectralkd.spectral.running.measures_from_means`: the
intensity and entropy are means, the RMS the square root of a mean, the high-frequency ratio a ratio of two means),
so a resample only needs the resampled means ``counts @ values / n``, where ``counts[b, i]`` is how often resample
b drew image i: one matrix product for all layers and values, no Python loop over resamples. The interval is the
percentile interval: the (1 − level)/2 and (1 + level)/2 quantiles (numpy's linear interpolation, as scipy) of the
B resampled values of the measure.

The interval describes how much a measure moves with the choice of images from the same source — it is not an
interval over training seeds, models or data sets. With fewer than two images there is no interval (None).

Memory: the index/count matrix is built in chunks of at most :data:`MAX_INDEX_ELEMENTS` entries; the result is
B × (layers · 5) float64.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from spectralkd.errors import UserError
from spectralkd.spectral.running import PER_IMAGE, LayerMeasures, measures_from_means

DEFAULT_RESAMPLES = 1000
CONFIDENCE_LEVEL = 0.95
# The measures that get an interval (the SVD rank, a 99th percentile over images, does not: the percentile
# bootstrap of an extreme quantile is unreliable).
CI_MEASURES = ("intensity", "rms", "entropy", "high_freq_ratio")
MAX_INDEX_ELEMENTS = 1 << 22


def resample_means(values: np.ndarray, resamples: int, seed: int = 0,
                   max_elements: int = MAX_INDEX_ELEMENTS) -> np.ndarray:
    """Means of ``resamples`` bootstrap resamples of the rows of ``values`` ([n] or [n, K]) → float64 [B, K].

    Deterministic for a fixed ``seed``; for ``resamples · n <= max_elements`` the resamples are exactly those of
    ``scipy.stats.bootstrap(..., rng=numpy.random.default_rng(seed))``."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 1:
        values = values[:, None]
    n = values.shape[0]
    if n < 1:
        raise UserError("the bootstrap needs at least one image")
    if int(resamples) < 1:
        raise UserError(f"bootstrap resamples must be at least 1, got {resamples}")
    resamples = int(resamples)
    rng = np.random.default_rng(seed)
    out = np.empty((resamples, values.shape[1]), dtype=np.float64)
    step = max(1, int(max_elements) // n)
    for start in range(0, resamples, step):
        b = min(step, resamples - start)
        idx = rng.integers(0, n, size=(b, n))
        idx += (np.arange(b) * n)[:, None]
        counts = np.bincount(idx.ravel(), minlength=b * n).reshape(b, n).astype(np.float64)
        out[start:start + b] = counts @ values / n
    return out


def percentile_interval(distribution: np.ndarray, level: float = CONFIDENCE_LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) percentile-bootstrap bounds of ``distribution`` ([B, ...] resampled values) along axis 0."""
    if not 0 < level < 1:
        raise UserError(f"confidence level must be between 0 and 1, got {level}")
    alpha = (1 - level) / 2
    lo, hi = np.quantile(distribution, [alpha, 1 - alpha], axis=0)
    return lo, hi


def layer_intervals(layers: Sequence[LayerMeasures], resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
                    level: float = CONFIDENCE_LEVEL) -> list[dict[str, tuple[float, float] | None]]:
    """Per layer, {measure: (lower, upper)} for the measures of :data:`CI_MEASURES`, resampling images.

    A measure without per-image values (no entropy pass) or a layer set of fewer than two images gets None."""
    empty = [{name: None for name in CI_MEASURES} for _ in layers]
    if not layers or int(resamples) < 1:
        return empty
    n = layers[0].num_images
    columns, where = [], []  # where[layer] = {per-image name: column}
    for m in layers:
        cols = {}
        for name in PER_IMAGE:
            v = m.per_image.get(name)
            if v is None:
                continue
            if len(v) != n:
                raise UserError(f"layer {m.index} has {len(v)} per-image '{name}' values for {n} images")
            cols[name] = len(columns)
            columns.append(v)
        where.append(cols)
    if n < 2 or not columns:
        return empty
    means = resample_means(np.stack(columns, axis=1), resamples, seed)
    out = []
    for m, cols, row in zip(layers, where, empty):
        if not {"intensity", "sumsq", "high", "ac"} <= set(cols):
            out.append(row)
            continue
        stats = measures_from_means({k: means[:, j] for k, j in cols.items()}, m.shape)
        for name, dist in stats.items():
            lo, hi = percentile_interval(dist, level)
            row[name] = (float(lo), float(hi))
        out.append(row)
    return out
