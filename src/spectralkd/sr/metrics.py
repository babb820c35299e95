"""PSNR and SSIM the way SR papers report them.

Both are computed on the Y channel (:func:`spectralkd.sr.color.rgb_to_y`) of 8-bit images after cropping
``crop_border`` pixels on every side, per image; a set's score is the mean over its images. SSIM is Wang et
al.'s with an 11×11 Gaussian window (σ = 1.5), K1 = 0.01, K2 = 0.03, L = 255, over the 'valid' region of the
window, as the standard SR evaluation code (MATLAB ``ssim_index`` / BasicSR ``calculate_ssim``).
"""
from __future__ import annotations

import math

import numpy as np

from spectralkd.errors import UserError
from spectralkd.sr.color import rgb_to_y


def _prepare(img: np.ndarray, ref: np.ndarray, crop_border: int, y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(img), np.asarray(ref)
    if a.shape != b.shape:
        raise UserError(f"image size {tuple(a.shape)} differs from the reference {tuple(b.shape)}")
    if crop_border < 0:
        raise UserError(f"crop border must be ≥ 0, got {crop_border}")
    if y_channel and a.ndim == 3:
        a, b = rgb_to_y(a), rgb_to_y(b)
    else:
        a, b = a.astype(np.float64), b.astype(np.float64)
    if crop_border:
        if min(a.shape[:2]) <= 2 * crop_border:
            raise UserError(f"image of size {a.shape[:2]} is too small to crop {crop_border} border pixels")
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    return a, b


def psnr(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, y_channel: bool = True) -> float:
    """PSNR in dB between two 8-bit images (H×W×3 RGB or H×W, values 0–255); inf when identical."""
    a, b = _prepare(img, ref, crop_border, y_channel)
    mse = float(np.mean((a - b) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def gaussian_1d(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product is MATLAB ``fspecial('gaussian', size, sigma)``."""
    ax = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(ax**2) / (2 * sigma**2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Correlation with the separable window ``outer(g, g)``, 'valid' region (MATLAB ``filter2(w, x, 'valid')``)."""
    k = g.shape[0]
    rows = np.lib.stride_tricks.sliding_window_view(x, k, axis=1) @ g
    return np.lib.stride_tricks.sliding_window_view(rows, k, axis=0) @ g


def _ssim_2d(a: np.ndarray, b: np.ndarray, win: np.ndarray) -> float:
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _filter_valid(a, win), _filter_valid(b, win)
    var_a = _filter_valid(a * a, win) - mu_a**2
    var_b = _filter_valid(b * b, win) - mu_b**2
    cov = _filter_valid(a * b, win) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return float(ssim_map.mean())


def ssim(img: np.ndarray, ref: np.ndarray, crop_border: int = 0, y_channel: bool = True) -> float:
    """SSIM between two 8-bit images; on RGB without ``y_channel`` the mean over the three channels."""
    a, b = _prepare(img, ref, crop_border, y_channel)
    win = gaussian_1d()
    if min(a.shape[:2]) < win.shape[0]:
        raise UserError(f"image of size {a.shape[:2]} is smaller than the 11×11 SSIM window")
    if a.ndim == 2:
        return _ssim_2d(a, b, win)
    return float(np.mean([_ssim_2d(a[..., c], b[..., c], win) for c in range(a.shape[2])]))
