"""Streaming accumulation of every measure over many batches, with bounded memory.

All measures except the entropy are sums over images (channel spectra, squared values, spatial power) or
per-image integers (SVD energy ranks, kept as a histogram of rank values so the percentile is exact), so one pass
of running float64 sums gives exactly the one-shot values.

The entropy needs the *global* min..max of all layers before any histogram can be taken. It is therefore computed
in a second pass over the same images: pass 1 (:meth:`RunningMeasures.update`) gathers everything else and the
range; pass 2 (:meth:`RunningMeasures.update_entropy`) histograms with the final range. This reproduces the
definition exactly, at the cost of running the model twice (``spectralkd analyze`` does this). Memory is
independent of the number of images — O(layers × (C + H·W + min(H·W, C))) for the sums plus the chunked
temporaries of one batch — except for five float64 scalars per image and layer, the per-image values below.

Per-image values (:data:`PER_IMAGE`), for bootstrap intervals over images (:mod:`spectralkd.spectral.bootstrap`).
Every image of a layer has the same C×H×W, so each measure is a function of plain means over images:

* ``intensity``: the image's own L(X) (mean over k of its ``Σ_{h,w} |FFT_k|/C``, divided by H·W); the layer's
  L(X) is their mean.
* ``entropy``: the image's mean position entropy; the layer's entropy is their mean.
* ``sumsq``: the image's ``Σ x²``; RMS = ``sqrt(mean(sumsq) / (C·H·W))`` — not the mean of per-image RMS.
* ``high``, ``ac``: the image's high-frequency and non-DC spatial energy; the high-frequency ratio is
  ``mean(high) / mean(ac)`` — a ratio of means, not the mean of per-image ratios.

:func:`measures_from_means` is that map; applied to the means over all images it gives the point estimates of
:meth:`RunningMeasures.results` (to float64 rounding, tested), applied to the means of a bootstrap resample it
gives that resample's values. The SVD rank (a 99th percentile over images) has no such form and gets no interval.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np
import torch

from spectralkd.errors import UserError
from spectralkd.spectral.channel import check_map, spectrum_per_image
from spectralkd.spectral.entropy import ChannelHistogram, histogram_edges
from spectralkd.spectral.spatial import (
    HIGH_FREQ_CUTOFF, RadialGrid, high_ratio_from_power, radial_grid, ring_energy, spatial_energy_per_image,
)
from spectralkd.spectral.stats import ENERGY_LEVELS, GRAM_CHUNK_IMAGES, energy_spectra, percentile_of_counts, ranks_from_energy

RANK_PERCENTILE = 99.0
# The per-image values kept for every layer (see the module docstring); "entropy" only after the entropy pass.
PER_IMAGE = ("intensity", "sumsq", "high", "ac", "entropy")


def measures_from_means(means: Mapping[str, np.ndarray | float], shape: Sequence[int]) -> dict[str, np.ndarray]:
    """The layer's intensity, rms, high_freq_ratio (and entropy, when given) from means over images of the
    per-image values of :data:`PER_IMAGE`; works elementwise on arrays (e.g. one mean per bootstrap resample)."""
    c, h, w = shape
    ac, high = (np.asarray(means[k], dtype=np.float64) for k in ("ac", "high"))
    out = {"intensity": np.asarray(means["intensity"], dtype=np.float64),
           "rms": np.sqrt(np.asarray(means["sumsq"], dtype=np.float64) / (c * h * w)),
           # as high_ratio_from_power: 0 for maps without spatial variation
           "high_freq_ratio": np.where(ac > 0, high / np.where(ac > 0, ac, 1), 0.0)}
    if means.get("entropy") is not None:
        out["entropy"] = np.asarray(means["entropy"], dtype=np.float64)
    return out


@dataclass
class LayerMeasures:
    """Every measure of one layer (``index`` is the model's block/stage index or position in --layers)."""

    index: int
    shape: tuple[int, int, int]  # C, H, W
    intensity: float  # mean of the channel spectrum (SpectralKD's L(X))
    entropy: float | None  # bits; None until the entropy pass ran
    rms: float
    svd_ranks: dict[float, float]  # energy level -> 99th percentile over images of the energy rank
    high_freq_ratio: float
    spectrum: np.ndarray  # [C] mean |FFT along C| / C
    radial_frequency: np.ndarray  # ring frequencies (1 = Nyquist along an axis)
    radial_power: np.ndarray  # mean power per ring
    min: float
    max: float
    num_images: int
    # float64 [num_images] per name of PER_IMAGE (entropy only after the entropy pass), in the order images came
    per_image: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class _Layer:
    shape: tuple[int, int, int]
    grid: RadialGrid
    spectrum: torch.Tensor
    power: torch.Tensor
    rank_counts: torch.Tensor  # [levels, min(N, C) + 1]
    rows: int = 0
    maps: float = 0.0
    images: int = 0
    lo: float = float("inf")
    hi: float = float("-inf")
    entropy_sum: float = 0.0
    entropy_rows: int = 0
    per_image: dict[str, list[torch.Tensor]] = field(default_factory=lambda: {k: [] for k in PER_IMAGE})


class RunningMeasures:
    """Accumulates all measures for a fixed list of layers over batches of maps (see the module docstring)."""

    def __init__(self, layer_ids: Sequence[int] | None = None, bins: int = 100,
                 levels: Sequence[float] = ENERGY_LEVELS, cutoff: float = HIGH_FREQ_CUTOFF):
        if int(bins) < 1:
            raise UserError(f"bins must be a positive integer, got {bins}")
        self.layer_ids = list(layer_ids) if layer_ids is not None else None
        self.bins = int(bins)
        self.levels = tuple(float(v) for v in levels)
        self.cutoff = float(cutoff)
        self.layers: list[_Layer] = []
        self._entropy: ChannelHistogram | None = None
        self._range: tuple[float, float] | None = None
        self._dtype = torch.float32  # float64 once any float64 map is seen (edges in the data's dtype, as numpy)

    def _check(self, maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        maps = list(maps)
        if self.layer_ids is None:
            self.layer_ids = list(range(len(maps)))
        if len(maps) != len(self.layer_ids):
            raise UserError(f"got {len(maps)} maps for {len(self.layer_ids)} layers")
        for i, (lid, x) in enumerate(zip(self.layer_ids, maps)):
            if x.dim() != 4:
                raise UserError(f"layer {lid} map has shape {tuple(x.shape)}; expected B×C×H×W")
            if self.layers and tuple(x.shape[1:]) != self.layers[i].shape:
                raise UserError(f"layer {lid} changed shape from {self.layers[i].shape} to {tuple(x.shape[1:])}")
        return maps

    def update(self, maps: Sequence[torch.Tensor]) -> None:
        """Pass 1: add one batch (one B×C×H×W map per layer) to all sums except the entropy."""
        maps = self._check(maps)
        if self._entropy is not None:
            raise UserError("update() after the entropy pass started; pass 1 must see every batch first")
        for i, x in enumerate(maps):
            x = x.detach()
            b, c, h, w = x.shape
            if len(self.layers) <= i:
                dev = x.device
                self.layers.append(_Layer(
                    shape=(c, h, w), grid=radial_grid(h, w, self.cutoff, device=dev),
                    spectrum=torch.zeros(c, dtype=torch.float64, device=dev),
                    power=torch.zeros(h, w // 2 + 1, dtype=torch.float64, device=dev),
                    rank_counts=torch.zeros(len(self.levels), min(h * w, c) + 1, dtype=torch.int64, device=dev),
                ))
            layer = self.layers[i]
            x = check_map(x, f"layer {self.layer_ids[i]}")
            if x.dtype == torch.float64:
                self._dtype = torch.float64
            mn, mx = (float(v) for v in torch.aminmax(x))
            if not (np.isfinite(mn) and np.isfinite(mx)):
                raise UserError(f"layer {self.layer_ids[i]} has NaN or infinite values")
            layer.lo, layer.hi = min(layer.lo, mn), max(layer.hi, mx)
            spectra = spectrum_per_image(x)
            layer.spectrum += spectra.sum(dim=0)
            layer.per_image["intensity"].append(spectra.mean(dim=1) / (h * w))
            layer.rows += b * h * w
            for s in range(0, b, GRAM_CHUNK_IMAGES):
                ranks = ranks_from_energy(energy_spectra(x[s:s + GRAM_CHUNK_IMAGES]), self.levels)
                for j in range(len(self.levels)):
                    layer.rank_counts[j] += torch.bincount(ranks[:, j], minlength=layer.rank_counts.shape[1])
            weighted, _ = spatial_energy_per_image(x, layer.grid)
            layer.power += weighted.sum(dim=0)  # Σ weighted power = Σ x² (Parseval): the RMS comes from here
            flat = weighted.reshape(b, -1)
            layer.per_image["sumsq"].append(flat.sum(dim=1))
            layer.per_image["high"].append(flat[:, layer.grid.high.reshape(-1)].sum(dim=1))
            layer.per_image["ac"].append(flat[:, ~layer.grid.dc.reshape(-1)].sum(dim=1))
            layer.maps += float(b * c)
            layer.images += b

    @property
    def value_range(self) -> tuple[float, float]:
        """Global (min, max) over every layer and image seen in pass 1 (the entropy histogram range)."""
        if not self.layers:
            raise UserError("no batches were analysed (no images?)")
        return min(l.lo for l in self.layers), max(l.hi for l in self.layers)

    def update_entropy(self, maps: Sequence[torch.Tensor]) -> None:
        """Pass 2: histogram entropies of one batch, on the global range from pass 1 (or ``set_range``)."""
        maps = self._check(maps)
        if self._entropy is None:
            self.set_range(*(self._range or self.value_range), device=maps[0].device)
        for i, x in enumerate(maps):
            x = check_map(x.detach(), f"layer {self.layer_ids[i]}")
            sums = self._entropy.per_image(x)
            self.layers[i].entropy_sum += float(sums.sum())
            self.layers[i].entropy_rows += x.shape[0] * x.shape[2] * x.shape[3]
            self.layers[i].per_image["entropy"].append(sums / (x.shape[2] * x.shape[3]))

    def set_range(self, lo: float, hi: float, device: torch.device | str = "cpu") -> None:
        """Fix the entropy histogram range (default: the pass-1 range)."""
        self._range = (float(lo), float(hi))
        self._entropy = ChannelHistogram(histogram_edges(lo, hi, self.bins, self._dtype), device=device)

    def results(self) -> list[LayerMeasures]:
        out = []
        for lid, layer in zip(self.layer_ids or [], self.layers):
            c, h, w = layer.shape
            spectrum = (layer.spectrum / layer.rows).cpu().numpy()
            rings = ring_energy(layer.power, layer.grid)
            power = (rings / layer.grid.ring_count.clamp(min=1) / layer.maps).cpu().numpy()
            ranks = {lv: percentile_of_counts(layer.rank_counts[j], RANK_PERCENTILE) for j, lv in enumerate(self.levels)}
            out.append(LayerMeasures(
                index=int(lid), shape=(c, h, w), intensity=float(spectrum.mean()),
                entropy=layer.entropy_sum / layer.entropy_rows if layer.entropy_rows else None,
                rms=float(np.sqrt(float(layer.power.sum()) / (layer.rows * c))), svd_ranks=ranks,
                high_freq_ratio=high_ratio_from_power(layer.power, layer.grid), spectrum=spectrum,
                radial_frequency=layer.grid.frequency.numpy(), radial_power=power,
                min=layer.lo, max=layer.hi, num_images=layer.images,
                per_image={k: torch.cat(v).cpu().numpy() for k, v in layer.per_image.items() if v},
            ))
        return out


def measure_all(maps: Sequence[torch.Tensor], layer_ids: Sequence[int] | None = None, bins: int = 100,
                levels: Sequence[float] = ENERGY_LEVELS, cutoff: float = HIGH_FREQ_CUTOFF) -> list[LayerMeasures]:
    """Every measure of every layer for maps already in memory (both passes over the same list)."""
    acc = RunningMeasures(layer_ids, bins, levels, cutoff)
    acc.update(maps)
    acc.update_entropy(maps)
    return acc.results()
