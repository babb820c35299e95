"""Straightforward numpy implementation of the spectral measures, written directly from their definitions.

Used as the baseline of ``bench_spectral.py`` and as an independent reference in the tests. It deliberately
follows the obvious route (as the SpectralKD authors' analysis code does): full ``np.fft.fft`` along the channels,
a Python loop of ``np.histogram`` per spatial position, ``np.linalg.svd`` per image, full ``np.fft.fft2``.
"""
from __future__ import annotations

import numpy as np


def channel_spectrum(x: np.ndarray) -> np.ndarray:
    """Mean over B, H, W of |FFT along C| / C → [C]."""
    c = x.shape[1]
    return np.abs(np.fft.fft(x, axis=1)).mean(axis=(0, 2, 3)) / c


def channel_entropy(maps: list[np.ndarray], bins: int = 100) -> list[float]:
    """Per layer: mean over positions of the Shannon entropy (bits) of np.histogram over the global range."""
    lo = min(float(m.min()) for m in maps)
    hi = max(float(m.max()) for m in maps)
    out = []
    for m in maps:
        b, c, h, w = m.shape
        total = 0.0
        for i in range(b):
            for y in range(h):
                for x in range(w):
                    counts, _ = np.histogram(m[i, :, y, x], bins=bins, range=(lo, hi))
                    p = counts[counts > 0] / counts.sum()
                    total += float(-(p * np.log2(p)).sum())
        out.append(total / (b * h * w))
    return out


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def energy_rank(s: np.ndarray, level: float) -> int:
    """Smallest d with the d largest squared singular values holding ``level`` of the energy."""
    e = np.sort(s.astype(np.float64) ** 2)[::-1]
    total = e.sum()
    if total == 0:
        return 0
    return int(np.argmax(np.cumsum(e) >= level * total)) + 1


def svd_rank(x: np.ndarray, level: float = 0.99, q: float = 99.0) -> float:
    """q-th percentile over images of the energy rank of each image's (H·W)×C token matrix."""
    b, c, h, w = x.shape
    ranks = []
    for i in range(b):
        tokens = x[i].reshape(c, h * w).T
        ranks.append(energy_rank(np.linalg.svd(tokens, compute_uv=False), level))
    return float(np.percentile(ranks, q))


def radial_spectrum(x: np.ndarray, cutoff: float = 0.5) -> tuple[np.ndarray, np.ndarray, float]:
    """(ring energy, mean power per ring, high-frequency ratio) from the full-plane orthonormal fft2."""
    b, c, h, w = x.shape
    power = (np.abs(np.fft.fft2(x.astype(np.float64), norm="ortho")) ** 2).sum(axis=(0, 1))
    fy = np.fft.fftfreq(h)[:, None] / 0.5
    fx = np.fft.fftfreq(w)[None, :] / 0.5
    rho = np.sqrt(fy ** 2 + fx ** 2)
    m = max(max(h, w) // 2, 1)
    ring = np.round(rho * m).astype(int)
    n_rings = int(round(np.sqrt(2) * m)) + 1
    energy = np.bincount(ring.ravel(), weights=power.ravel(), minlength=n_rings)
    counts = np.bincount(ring.ravel(), minlength=n_rings)
    mean_power = energy / np.maximum(counts, 1) / (b * c)
    ac = power.sum() - power[0, 0]
    high = power[rho > cutoff].sum()
    return energy, mean_power, float(high / ac) if ac > 0 else 0.0


def all_measures(maps: list[np.ndarray], bins: int = 100) -> list[dict]:
    entropies = channel_entropy(maps, bins)
    out = []
    for m, ent in zip(maps, entropies):
        spectrum = channel_spectrum(m)
        _, power, high = radial_spectrum(m)
        out.append({"intensity": float(spectrum.mean()), "entropy": ent, "rms": rms(m),
                    "svd_rank_99": svd_rank(m), "high_freq_ratio": high, "spectrum": spectrum,
                    "radial_power": power})
    return out
