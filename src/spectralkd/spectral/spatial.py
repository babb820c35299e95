"""Spatial 2-D spectra of feature maps: radially averaged power and the high-frequency energy ratio.

Each channel map ``x[b, c]`` (H×W) is transformed with ``rfft2`` (orthonormal). The rfft keeps the columns
``k_x = 0 .. W//2``; every column except ``k_x = 0`` and (W even) the Nyquist column ``k_x = W/2`` stands for
itself and its mirror image, so it is counted twice. With these weights Parseval holds exactly:
``Σ_{h,w} x² = Σ weight · |F|²``.

Frequencies are normalised per axis to the Nyquist frequency: ``ρ = sqrt((f_y / 0.5)² + (f_x / 0.5)²)`` with
``f`` in cycles per pixel, so ρ = 1 is the highest frequency along an axis and the corners reach √2. The radial
profile has ring ``r = round(ρ · M)``, ``M = max(H, W) // 2``, r = 0 .. round(√2·M).

* ``radial power`` of ring r: the mean of ``|F|²`` over the (full-plane) frequencies in the ring, averaged over
  images and channels; ``ring energy`` is the sum instead, and the ring energies add up to ``Σ x²``.
* ``high-frequency ratio``: the share of the non-DC energy at ρ > ``cutoff`` (default 0.5, i.e. above half the
  Nyquist frequency). The DC term (each channel's spatial mean) is left out because it is usually far larger
  than everything else and would hide the spatial structure. 0 for maps without any spatial variation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from spectralkd.spectral.channel import check_map

HIGH_FREQ_CUTOFF = 0.5
# Images per rfft2 chunk (bounds the complex temporary).
SPATIAL_CHUNK_IMAGES = 4


@dataclass(frozen=True)
class RadialGrid:
    """Where each rfft2 coefficient of an H×W map falls: ring index, Parseval weight, high-frequency mask."""

    h: int
    w: int
    ring: torch.Tensor  # int64 [H, W//2+1]
    weight: torch.Tensor  # float64 [H, W//2+1]: 1 or 2 (mirror columns)
    high: torch.Tensor  # bool [H, W//2+1]: rho > cutoff
    dc: torch.Tensor  # bool [H, W//2+1]
    n_rings: int
    ring_count: torch.Tensor  # float64 [n_rings]: full-plane frequencies per ring

    @property
    def frequency(self) -> torch.Tensor:
        """Normalised radial frequency of each ring (1 = Nyquist along an axis)."""
        return torch.arange(self.n_rings, dtype=torch.float64) / max(max(self.h, self.w) // 2, 1)


def radial_grid(h: int, w: int, cutoff: float = HIGH_FREQ_CUTOFF, device: torch.device | str = "cpu") -> RadialGrid:
    fy = torch.fft.fftfreq(h, dtype=torch.float64, device=device)[:, None] / 0.5
    fx = torch.fft.rfftfreq(w, dtype=torch.float64, device=device)[None, :] / 0.5
    rho = torch.sqrt(fy ** 2 + fx ** 2)
    m = max(max(h, w) // 2, 1)
    ring = torch.round(rho * m).to(torch.int64)
    n_rings = int(round(math.sqrt(2) * m)) + 1
    weight = torch.full(rho.shape, 2.0, dtype=torch.float64, device=device)
    weight[:, 0] = 1.0
    if w % 2 == 0:
        weight[:, -1] = 1.0
    ring_count = torch.bincount(ring.view(-1), weights=weight.view(-1), minlength=n_rings)
    dc = torch.zeros(rho.shape, dtype=torch.bool, device=device)
    dc[0, 0] = True
    return RadialGrid(h, w, ring, weight, rho > cutoff, dc, n_rings, ring_count)


def spatial_energy_per_image(x: torch.Tensor, grid: RadialGrid | None = None,
                             chunk_images: int = SPATIAL_CHUNK_IMAGES) -> tuple[torch.Tensor, RadialGrid]:
    """Weighted power ``weight · |F|²`` of each image summed over its channels → (float64 [B, H, W//2+1], grid).

    Each image's total is its ``Σ x²`` (Parseval); its high-frequency and non-DC parts are the numerator and
    denominator of the layer's high-frequency ratio, which is therefore a ratio of sums over images."""
    x = check_map(x)
    b, c, h, w = x.shape
    grid = grid or radial_grid(h, w, device=x.device)
    power = torch.empty(b, h, w // 2 + 1, dtype=torch.float64, device=x.device)
    for start in range(0, b, chunk_images):
        f = torch.fft.rfft2(x[start:start + chunk_images], norm="ortho")
        power[start:start + chunk_images] = (f.real.square() + f.imag.square()).sum(dim=1, dtype=torch.float64)
    return power * grid.weight, grid


def spatial_energy(x: torch.Tensor, grid: RadialGrid | None = None,
                   chunk_images: int = SPATIAL_CHUNK_IMAGES) -> tuple[torch.Tensor, torch.Tensor, RadialGrid]:
    """Weighted power ``weight · |F|²`` summed over images and channels → (float64 [H, W//2+1], total, grid).

    ``total`` is the number of channel maps summed (B·C), for averaging.
    """
    per_image, grid = spatial_energy_per_image(x, grid, chunk_images)
    return per_image.sum(dim=0), torch.tensor(float(x.shape[0] * x.shape[1]), dtype=torch.float64), grid


def ring_energy(weighted_power: torch.Tensor, grid: RadialGrid) -> torch.Tensor:
    """Weighted power [H, W//2+1] → energy per ring [n_rings] (sums to the total energy)."""
    return torch.bincount(grid.ring.view(-1), weights=weighted_power.reshape(-1), minlength=grid.n_rings)


def high_ratio_from_power(weighted_power: torch.Tensor, grid: RadialGrid) -> float:
    ac = float(weighted_power[~grid.dc].sum())
    return float(weighted_power[grid.high].sum()) / ac if ac > 0 else 0.0


def radial_power_spectrum(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(normalised ring frequency [R], mean power per frequency in each ring averaged over B and C [R])."""
    weighted, count, grid = spatial_energy(x)
    power = ring_energy(weighted, grid) / grid.ring_count.clamp(min=1) / count
    return grid.frequency, power


def high_frequency_ratio(x: torch.Tensor, cutoff: float = HIGH_FREQ_CUTOFF) -> float:
    """Share of the non-DC spatial energy at normalised radius ρ > ``cutoff`` (see the module docstring)."""
    x = check_map(x)
    grid = radial_grid(x.shape[2], x.shape[3], cutoff, device=x.device)
    weighted, _, grid = spatial_energy(x, grid)
    return high_ratio_from_power(weighted, grid)
