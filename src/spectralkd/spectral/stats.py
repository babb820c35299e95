"""Measures that do not depend on the (arbitrary) channel order: RMS and SVD energy rank.

* RMS: ``sqrt(mean(x²))`` over all elements of a layer's maps — the scale that the frequency intensity
  ``L(X) ≈ 0.88 · RMS / sqrt(C)`` mostly reflects.
* SVD energy rank: per image, the N×C token matrix X (N = H·W positions, one C-vector per row, not centred) has
  singular values σ_1 ≥ σ_2 ≥ ...; its energy is ``Σ σ_i² = ||X||_F²``. The energy rank at level τ is the
  smallest d with ``σ_1² + ... + σ_d² >= τ · Σ σ_i²`` (0 for an all-zero matrix). A layer is summarised by the
  99th percentile over images (numpy's default linear interpolation) of the rank at τ = 0.99 — how many
  directions of channel space the layer really uses. Because X is not centred, a large mean token shows up as one
  dominant direction.

The squared singular values are the eigenvalues of the Gram matrix ``X Xᵀ`` (N×N) or ``Xᵀ X`` (C×C), whichever
is smaller, both computed in the input's precision (float32 maps: float32, like an SVD of the float32 matrix)
and accumulated in float64.
"""
from __future__ import annotations

from typing import Sequence

import torch

from spectralkd.errors import UserError
from spectralkd.spectral.channel import check_map

ENERGY_LEVELS = (0.80, 0.90, 0.95, 0.99)
# Images per Gram/eigen batch: bounds the float64 Gram temporaries.
GRAM_CHUNK_IMAGES = 16


def rms(x: torch.Tensor) -> torch.Tensor:
    """Root mean square of all elements → 0-d float64 tensor."""
    x = check_map(x)
    return torch.sqrt(torch.linalg.vector_norm(x, dtype=torch.float64) ** 2 / x.numel())


def energy_spectra(x: torch.Tensor) -> torch.Tensor:
    """Squared singular values of each image's token matrix, descending → float64 [B, min(H·W, C)].

    ``x`` is a checked B×C×H×W map; with X_b = x[b] as a C×N matrix the Gram matrix is ``X_bᵀ X_b`` (N×N) or
    ``X_b X_bᵀ`` (C×C), whichever is smaller (no copy: BLAS reads the transposed operand in place).
    """
    b, c, h, w = x.shape
    t = x.reshape(b, c, h * w)
    gram = t.transpose(1, 2) @ t if h * w <= c else t @ t.transpose(1, 2)
    eig = torch.linalg.eigvalsh(gram).to(torch.float64).clamp_(min=0)
    return eig.flip(-1)


def ranks_from_energy(energy: torch.Tensor, levels: Sequence[float] = ENERGY_LEVELS) -> torch.Tensor:
    """Energy ranks from descending squared singular values [B, K] → int64 [B, len(levels)]."""
    for level in levels:
        if not 0 < float(level) <= 1:
            raise UserError(f"energy level {level} must be in (0, 1]")
    cum = energy.cumsum(dim=-1)
    total = cum[..., -1:]
    lv = torch.tensor([float(v) for v in levels], dtype=cum.dtype, device=cum.device)
    # smallest d with cum[d-1] >= level * total  ==  1 + #{j : cum[j] < level * total}
    below = (cum.unsqueeze(-2) < lv[:, None] * total.unsqueeze(-1)).sum(dim=-1)
    ranks = (below + 1).clamp_(max=energy.shape[-1])
    return torch.where(total > 0, ranks, torch.zeros_like(ranks))


def energy_ranks(x: torch.Tensor, levels: Sequence[float] = ENERGY_LEVELS,
                 chunk_images: int = GRAM_CHUNK_IMAGES) -> torch.Tensor:
    """SVD energy rank of each image's token matrix at each level → int64 [B, len(levels)]."""
    x = check_map(x)
    out = [ranks_from_energy(energy_spectra(x[i:i + chunk_images]), levels)
           for i in range(0, x.shape[0], chunk_images)]
    return torch.cat(out)


def percentile_of_counts(counts: torch.Tensor, q: float = 99.0) -> float:
    """``numpy.percentile(values, q)`` (linear interpolation) of integers given as counts[v] = #occurrences of v."""
    counts = counts.to(torch.int64).cpu()
    n = int(counts.sum())
    if n == 0:
        return float("nan")
    pos = q / 100.0 * (n - 1)
    lower = int(pos)
    frac = pos - lower
    cum = counts.cumsum(0)

    def value_at(rank: int) -> int:  # the rank-th smallest value (0-based)
        return int(torch.searchsorted(cum, torch.tensor(rank + 1)).item())

    lo_v = value_at(lower)
    hi_v = value_at(min(lower + 1, n - 1))
    return lo_v + (hi_v - lo_v) * frac


def svd_rank(x: torch.Tensor, level: float = 0.99, q: float = 99.0) -> float:
    """The q-th percentile over images of the SVD energy rank at ``level`` (the layer summary ``svd_rank_99``)."""
    ranks = energy_ranks(x, (level,))[:, 0]
    counts = torch.bincount(ranks.cpu(), minlength=1)
    return percentile_of_counts(counts, q)
