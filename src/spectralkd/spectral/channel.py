"""Channel spectra: the FFT along the channel axis of a B×C×H×W feature map (SpectralKD's measure).

For every spatial position (b, h, w) the C-vector ``x[b, :, h, w]`` is Fourier-transformed along C; the
*layer-wise spectrum* is the mean over B, H, W of ``|FFT_k| / C`` (one value per channel frequency k, shape [C]),
and the *frequency intensity* ``L(X)`` of a layer is the mean of that spectrum over k (a scalar).

Reading L(X). For channels without structure (iid, zero mean, standard deviation σ) each non-DC FFT coefficient
is a complex Gaussian with ``E|FFT_k|² = C σ²``, so ``|FFT_k|`` is Rayleigh distributed with mean
``sqrt(pi/4) · sqrt(C) · σ`` and ``E|FFT_k| / C = sqrt(pi/4) · σ / sqrt(C) ≈ 0.886 σ / sqrt(C)``
(the DC and Nyquist bins are real Gaussians, mean ``sqrt(2/pi) ≈ 0.798`` instead of 0.886; they weigh 2/C).
Since the RMS of such a map is σ, ``L(X) ≈ 0.88 · RMS / sqrt(C)``: the intensity is first of all the scale of
the activations. Compare L(X) with the RMS beside it (``analysis.json`` and the report show both); only the
departure from ``0.88 · RMS / sqrt(C)`` says something about structure across channels, and since the channel
order of a network is arbitrary, that structure is a property of the learned channel basis, not of the image.
A non-zero channel mean μ adds ``|μ| / C`` through the DC bin.

The FFT of a real vector is Hermitian (``|FFT_k| = |FFT_{C-k}|``), so only ``rfft`` is computed and mirrored.
All functions take float32 or float64 tensors on any device (half precision is computed in float32); sums
are accumulated in float64.
"""
from __future__ import annotations

import torch

from spectralkd.errors import UserError

# Elements per chunk of images: bounds the temporaries of every measure (about 8 bytes × this per buffer).
CHUNK_ELEMENTS = 1 << 20


def images_per_chunk(x: torch.Tensor, elements: int = CHUNK_ELEMENTS) -> int:
    """How many images of a B×C×H×W map fit in one chunk of ``elements`` values (at least 1)."""
    return max(1, elements // max(1, x[0].numel()))


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else is computed in float32."""
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def check_map(x: torch.Tensor, name: str = "feature map") -> torch.Tensor:
    """A B×C×H×W floating tensor in float32/float64, else :class:`UserError` naming ``name``."""
    if not isinstance(x, torch.Tensor) or x.dim() != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise UserError(f"{name} has shape {shape}; expected a B×C×H×W tensor")
    if not x.is_floating_point():
        raise UserError(f"{name} has dtype {x.dtype}; expected a real floating-point tensor")
    if x.numel() == 0:
        raise UserError(f"{name} is empty (shape {tuple(x.shape)})")
    return x.to(compute_dtype(x))


def mirror_half_spectrum(half: torch.Tensor, c: int) -> torch.Tensor:
    """[..., C//2+1] magnitudes of an rfft → the full [..., C] magnitude spectrum (|X_k| = |X_{C-k}|)."""
    tail = half[..., 1:(c + 1) // 2].flip(-1)
    return torch.cat([half, tail], dim=-1)


def spectrum_per_image(x: torch.Tensor) -> torch.Tensor:
    """Per image, the sum over H, W of ``|FFT along C| / C`` for a checked B×C×H×W map → float64 [B, C]. Chunked.

    Its mean over k divided by H·W is the image's own frequency intensity; since every image has H·W positions,
    the layer's L(X) is the plain mean of those over images (what ``spectralkd analyze`` bootstraps)."""
    b, c = x.shape[:2]
    half = torch.empty(b, c // 2 + 1, dtype=torch.float64, device=x.device)
    step = images_per_chunk(x)
    for start in range(0, b, step):
        mag = torch.fft.rfft(x[start:start + step], dim=1).abs()
        half[start:start + step] = mag.sum(dim=(2, 3), dtype=torch.float64)
    return mirror_half_spectrum(half, c) / c


def spectrum_sum(x: torch.Tensor) -> torch.Tensor:
    """Sum over B, H, W of ``|FFT along C| / C`` for a checked B×C×H×W map → float64 tensor [C]. Chunked."""
    return spectrum_per_image(x).sum(dim=0)


def channel_spectrum(x: torch.Tensor) -> torch.Tensor:
    """Mean over B, H, W of ``|FFT along C of x| / C`` for x of shape B×C×H×W → tensor [C] (x's float dtype).

    This is SpectralKD's layer-wise spectrum; bin k is the channel frequency k/C (plot the first C//2 bins
    against the normalised frequency k/C ∈ [0, 0.5)).
    """
    x = check_map(x)
    b, _, h, w = x.shape
    return (spectrum_sum(x) / (b * h * w)).to(x.dtype)


def frequency_intensity(x: torch.Tensor) -> torch.Tensor:
    """SpectralKD's model-wise measure L(X): the mean of :func:`channel_spectrum` → 0-d tensor.

    For unstructured channels ``L(X) ≈ 0.88 · RMS / sqrt(C)`` (see the module docstring): read it with the RMS.
    """
    return channel_spectrum(x).mean()
