"""Channel spectrum and frequency intensity against hand computations and numpy."""
import math

import numpy as np
import pytest
import torch

from spectralkd.errors import UserError
from spectralkd.spectral import channel_spectrum, frequency_intensity


def test_channel_spectrum_hand_computed():
    # FFT([1,2,3,4]) = [10, -2+2j, -2, -2-2j]; FFT([1,0,0,0]) = [1,1,1,1]; divide by C=4, average the 2 positions.
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 0.0, 0.0, 0.0]], dtype=torch.float64).T.reshape(1, 4, 1, 2)
    a = np.array([10, 2 * math.sqrt(2), 2, 2 * math.sqrt(2)]) / 4
    b = np.ones(4) / 4
    expected = (a + b) / 2
    np.testing.assert_allclose(channel_spectrum(x).numpy(), expected, rtol=1e-12)
    assert float(frequency_intensity(x)) == pytest.approx(expected.mean(), rel=1e-12)


@pytest.mark.parametrize("c", [7, 8, 33])
def test_channel_spectrum_matches_numpy_fft(c):
    rng = np.random.default_rng(c)
    x = rng.normal(size=(3, c, 4, 5)) * 2 + 0.5
    expected = np.abs(np.fft.fft(x, axis=1)).mean(axis=(0, 2, 3)) / c
    got64 = channel_spectrum(torch.from_numpy(x))
    assert got64.dtype == torch.float64 and got64.shape == (c,)
    np.testing.assert_allclose(got64.numpy(), expected, rtol=1e-12)
    got32 = channel_spectrum(torch.from_numpy(x.astype(np.float32)))
    assert got32.dtype == torch.float32
    np.testing.assert_allclose(got32.numpy(), expected, rtol=1e-5)
    # half precision input is computed in float32
    np.testing.assert_allclose(channel_spectrum(torch.from_numpy(x).half()).numpy(), expected, rtol=3e-3)


def test_intensity_of_unstructured_channels_is_088_rms_over_sqrt_c():
    # iid N(0, σ²) channels: E|FFT_k|/C = sqrt(pi/4) σ/sqrt(C) for non-DC/Nyquist bins, sqrt(2/pi) σ/sqrt(C) for those 2.
    torch.manual_seed(0)
    c, sigma = 256, 1.7
    x = torch.randn(8, c, 16, 16, dtype=torch.float64) * sigma
    rms = float(x.square().mean().sqrt())
    expected = ((c - 2) * math.sqrt(math.pi / 4) + 2 * math.sqrt(2 / math.pi)) / c * rms / math.sqrt(c)
    assert float(frequency_intensity(x)) == pytest.approx(expected, rel=5e-3)
    assert float(frequency_intensity(x)) / (rms / math.sqrt(c)) == pytest.approx(0.886, abs=0.005)


def test_channel_spectrum_rejects_non_maps():
    with pytest.raises(UserError, match="B×C×H×W"):
        channel_spectrum(torch.zeros(3, 4, 5))
    with pytest.raises(UserError, match="dtype"):
        channel_spectrum(torch.zeros(1, 4, 2, 2, dtype=torch.int64))
