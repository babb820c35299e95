"""Spatial spectra: Parseval over the rfft half-plane, known single-frequency maps, a numpy fft2 reference."""
import numpy as np
import pytest
import torch

from spectralkd.spectral import high_frequency_ratio, radial_power_spectrum
from spectralkd.spectral.spatial import radial_grid, ring_energy, spatial_energy


@pytest.mark.parametrize("h,w", [(8, 8), (7, 7), (6, 9), (5, 4), (1, 6)])
def test_parseval_over_rfft_half_plane(h, w):
    torch.manual_seed(h * w)
    x = torch.randn(3, 5, h, w, dtype=torch.float64) + 0.3
    weighted, count, grid = spatial_energy(x)
    assert float(ring_energy(weighted, grid).sum()) == pytest.approx(float(x.square().sum()), rel=1e-12)
    assert float(weighted.sum()) == pytest.approx(float(x.square().sum()), rel=1e-12)
    assert float(count) == 15
    # the weights count every full-plane frequency once
    assert float(grid.ring_count.sum()) == h * w


def test_single_frequency_maps():
    n = 16
    w = torch.arange(n, dtype=torch.float64)
    low = torch.cos(2 * torch.pi * 3 * w / n).expand(n, n).reshape(1, 1, n, n)   # f = 3/16 -> rho .375 -> ring 3
    high = torch.cos(2 * torch.pi * 6 * w / n).expand(n, n).reshape(1, 1, n, n)  # f = 6/16 -> rho .75 -> ring 6
    freq, p_low = radial_power_spectrum(low)
    assert int(torch.argmax(p_low)) == 3 and float(freq[3]) == pytest.approx(3 / 8)
    assert float(p_low.sum() - p_low[3]) == pytest.approx(0.0, abs=1e-20)
    assert high_frequency_ratio(low) == pytest.approx(0.0, abs=1e-15)
    assert high_frequency_ratio(high) == pytest.approx(1.0)
    # a constant map has no AC energy; a mix splits by energy (amplitudes 1 and 2 -> 4/5 high)
    assert high_frequency_ratio(torch.full((2, 3, 8, 8), 5.0)) == 0.0
    assert high_frequency_ratio(low + 2 * high + 7.0) == pytest.approx(4 / 5)


def test_radial_power_matches_numpy_full_fft2():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 6, 10))
    power = (np.abs(np.fft.fft2(x, norm="ortho")) ** 2).mean(axis=(0, 1))
    fy = np.fft.fftfreq(6)[:, None] / 0.5
    fx = np.fft.fftfreq(10)[None, :] / 0.5
    rho = np.sqrt(fy ** 2 + fx ** 2)
    ring = np.round(rho * 5).astype(int)
    expected = np.bincount(ring.ravel(), power.ravel(), minlength=8) / np.maximum(np.bincount(ring.ravel(), minlength=8), 1)
    freq, got = radial_power_spectrum(torch.from_numpy(x))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(freq.numpy(), np.arange(8) / 5)
    high = power[rho > 0.5].sum() / (power.sum() - power[0, 0])
    assert high_frequency_ratio(torch.from_numpy(x)) == pytest.approx(high, rel=1e-12)
    assert radial_grid(6, 10).n_rings == 8
