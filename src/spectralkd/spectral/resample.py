"""Ideal (sinc / Fourier) downsampling of B×C×H×W maps, in the ``rfft2(norm="ortho")`` domain.

A map of H×W pixels is resampled to h×w (h ≤ H, w ≤ W) by keeping its Fourier coefficients at the frequencies an
h×w grid can represent and scaling by ``sqrt(h·w / (H·W))``, which is what the orthonormal transform needs so that
the result is the ortho spectrum of the resampled map. Per axis of length N → n (the two axes are independent):

* kept: the frequencies ``k = −⌈n/2⌉+1 .. ⌊(n−1)/2⌋`` (all of them for odd n); every higher one is dropped
  (an ideal low-pass, i.e. sinc interpolation of the periodic map);
* n even — the **Nyquist bin** ``n/2`` of the small grid receives the sum ``X[+n/2] + X[−n/2]`` of the large
  grid's two coefficients at ±n/2 (both alias onto it). For a real map this is ``2·Re X[n/2]`` along a full axis.
  This is the convention of ``scipy.signal.resample`` for real input (``Y[n/2] *= 2`` before ``irfft``, which
  keeps the real part) and of sampling the trigonometric interpolant truncated at ±n/2; with it
  "resample, then FFT" equals "FFT, then fold" exactly, and the folded spectrum is again the spectrum of a real map.

On the rfft (last) axis the large grid stores only ``k_x ≥ 0``; its coefficient at ``−w/2`` is the conjugate of the
one at ``(−k_y, +w/2)``, so the small grid's Nyquist column is ``X[k_y, w/2] + conj(X[−k_y, w/2])``.

**Where the samples sit** (``centered``). By default the two grids share their origin: small pixel ``j`` is the
large map's interpolant at large-pixel position ``j·N/n`` (``scipy.signal.resample``; a strided convolution with
"same" padding, whose output ``j`` is centred on input ``j·stride``). With ``centered=True`` each small pixel is the
interpolant at the *centre of the cell it covers*, ``j·N/n + (N/n − 1)/2``: the geometry of patch tokens (a patch-8
token covers two patch-4 tokens and sits between them), Swin patch merging, average pooling and bilinear resizing
with ``align_corners=False``. It multiplies ``X[k]`` by ``exp(2πi·k·s/N)`` with ``s = (N/n − 1)/2`` (signed ``k``;
the Fourier shift theorem) before the fold; the large grid's own Nyquist bin, whose shift would not be real, is
always above the kept band and dropped. Equal sizes on an axis mean ``s = 0`` there.
"""
from __future__ import annotations

import functools
import math

import torch

from spectralkd.errors import UserError


def _fold_full_axis(x: torch.Tensor, n: int, dim: int) -> torch.Tensor:
    """A full (complex FFT) axis of length N → length n ≤ N: keep |k| < n/2, fold ±n/2 into the Nyquist bin."""
    big = x.shape[dim]
    if n == big:
        return x
    half = (n - 1) // 2  # strictly positive (and negative) frequencies kept besides DC and Nyquist
    parts = [x.narrow(dim, 0, half + 1)]
    if n % 2 == 0:
        parts.append(x.narrow(dim, n // 2, 1) + x.narrow(dim, big - n // 2, 1))
    if half:
        parts.append(x.narrow(dim, big - half, half))
    return torch.cat(parts, dim)


def _fold_half_axis(x: torch.Tensor, big_w: int, w: int) -> torch.Tensor:
    """The rfft (last) axis of a W-wide map (W//2+1 columns) → w//2+1 columns, Nyquist column folded (w even)."""
    if w == big_w:
        return x
    keep = x[..., : w // 2 + 1]
    if w % 2:
        return keep
    col = x[..., w // 2]  # ...×H: coefficients at (k_y, +w/2)
    h = col.shape[-1]
    # the coefficient at (k_y, −w/2) is conj of the stored one at (−k_y, +w/2)
    mirror = col.conj().index_select(-1, (-torch.arange(h, device=col.device)) % h)
    return torch.cat([keep[..., :-1], (col + mirror).unsqueeze(-1)], dim=-1)


@functools.lru_cache(maxsize=64)
def _centre_ramp(big: tuple[int, int], small: tuple[int, int]) -> torch.Tensor:
    """The H×(W//2+1) phase ramp ``exp(2πi·k·s/N)``, ``s = (N/n − 1)/2`` per axis (signed ``k``), in complex128;
    the same for every step of a run, so it is built once per pair of sizes."""
    (big_h, big_w), (h, w) = big, small
    ky = torch.fft.fftfreq(big_h, dtype=torch.float64)  # k/N, signed
    kx = torch.fft.rfftfreq(big_w, dtype=torch.float64)
    phase = 2 * math.pi * ((big_h / h - 1) / 2 * ky[:, None] + (big_w / w - 1) / 2 * kx[None, :])
    return torch.polar(torch.ones_like(phase), phase)


def _centre_shift(spec: torch.Tensor, big: tuple[int, int], small: tuple[int, int]) -> torch.Tensor:
    """Moves the sampling origin to the cell centres: ``X[k] · exp(2πi·k·s/N)``."""
    return spec * _centre_ramp(big, small).to(spec.device, spec.dtype)


def fourier_resample_spectrum(spec: torch.Tensor, in_size: tuple[int, int], out_size: tuple[int, int],
                              centered: bool = False) -> torch.Tensor:
    """``rfft2(x, norm="ortho")`` of an H×W map → ``rfft2(resampled x, norm="ortho")`` at h×w (module docstring);
    ``centered``: samples at the small grid's cell centres rather than on the shared origin."""
    (big_h, big_w), (h, w) = (int(in_size[0]), int(in_size[1])), (int(out_size[0]), int(out_size[1]))
    if not (1 <= h <= big_h and 1 <= w <= big_w):
        raise UserError(f"Fourier resampling goes from {big_h}×{big_w} down to at least 1×1, not to {h}×{w}")
    if spec.shape[-2:] != (big_h, big_w // 2 + 1):
        raise UserError(f"spectrum of shape {tuple(spec.shape)} is not the rfft2 of a {big_h}×{big_w} map")
    if (h, w) == (big_h, big_w):
        return spec
    if centered:
        spec = _centre_shift(spec, (big_h, big_w), (h, w))
    out = _fold_half_axis(spec, big_w, w)
    out = _fold_full_axis(out, h, spec.dim() - 2)
    return out * math.sqrt((h * w) / (big_h * big_w))


def fourier_resample(x: torch.Tensor, size: tuple[int, int], centered: bool = False) -> torch.Tensor:
    """Ideal (sinc) downsampling of a ...×H×W real map to ``size`` (h ≤ H, w ≤ W), computed in float32/64;
    ``centered``: sampled at the cell centres (patch-token geometry) rather than on the shared origin."""
    x = x if x.dtype in (torch.float32, torch.float64) else x.float()
    h, w = int(size[0]), int(size[1])
    if tuple(x.shape[-2:]) == (h, w):
        return x
    spec = torch.fft.rfft2(x, dim=(-2, -1), norm="ortho")
    small = fourier_resample_spectrum(spec, tuple(x.shape[-2:]), (h, w), centered)
    return torch.fft.irfft2(small, s=(h, w), dim=(-2, -1), norm="ortho")


__all__ = ["fourier_resample", "fourier_resample_spectrum"]
