"""RMS and SVD energy rank on constructed matrices with known singular values."""
import math

import numpy as np
import pytest
import torch

from spectralkd.spectral import energy_ranks, rms, svd_rank
from spectralkd.spectral.stats import percentile_of_counts


def map_from_tokens(tokens: np.ndarray, h: int, w: int) -> torch.Tensor:
    """B×N×C token matrices (N = h·w) → B×C×H×W maps."""
    b, n, c = tokens.shape
    return torch.from_numpy(tokens).transpose(1, 2).reshape(b, c, h, w)


def with_singular_values(rng, n, c, s):
    u, _ = np.linalg.qr(rng.normal(size=(n, len(s))))
    v, _ = np.linalg.qr(rng.normal(size=(c, len(s))))
    return (u * np.asarray(s)) @ v.T


def test_rms_hand_computed():
    x = torch.tensor([3.0, 4.0, 0.0, 0.0]).reshape(1, 4, 1, 1)
    assert float(rms(x)) == pytest.approx(math.sqrt(25 / 4))


def test_energy_rank_of_known_spectrum():
    # squared singular values 50, 31, 10, 5, 3.5, 0.5 (total 100): cumulative .50 .81 .91 .96 .995 1.0
    rng = np.random.default_rng(0)
    t = with_singular_values(rng, 16, 12, np.sqrt([50, 31, 10, 5, 3.5, 0.5]))
    ranks = energy_ranks(map_from_tokens(t[None], 4, 4))
    assert ranks.tolist() == [[2, 3, 4, 5]]


def test_energy_rank_of_low_rank_and_zero_matrices():
    rng = np.random.default_rng(1)
    # rank-3 matrices with equal singular values: 80 % needs 3 directions (2/3 < .8), 99 % too; N < C and N > C
    a = with_singular_values(rng, 9, 20, [2.0, 2.0, 2.0])
    b = with_singular_values(rng, 25, 6, [1.0, 1.0, 1.0])
    assert energy_ranks(map_from_tokens(a[None], 3, 3)).tolist() == [[3, 3, 3, 3]]
    assert energy_ranks(map_from_tokens(b[None], 5, 5)).tolist() == [[3, 3, 3, 3]]
    assert energy_ranks(torch.zeros(2, 4, 2, 2)).tolist() == [[0] * 4, [0] * 4]


def test_svd_rank_is_99th_percentile_over_images_like_numpy():
    rng = np.random.default_rng(2)
    imgs = []
    for r in [1, 2, 3, 4, 5, 6, 7]:
        imgs.append(with_singular_values(rng, 16, 10, np.linspace(3, 1, r)))
    x = map_from_tokens(np.stack(imgs), 4, 4)
    per_image = energy_ranks(x, (0.99,))[:, 0].numpy()
    ref = []
    for t in imgs:
        e = np.linalg.svd(t, compute_uv=False) ** 2
        ref.append(int(np.argmax(np.cumsum(e) >= 0.99 * e.sum())) + 1)
    np.testing.assert_array_equal(per_image, ref)
    assert svd_rank(x) == pytest.approx(np.percentile(ref, 99))


def test_percentile_of_counts_equals_numpy_percentile():
    rng = np.random.default_rng(3)
    for n in [1, 2, 7, 100, 1001]:
        values = rng.integers(0, 40, size=n)
        counts = torch.bincount(torch.from_numpy(values), minlength=40)
        for q in [0, 50, 90, 99, 100]:
            assert percentile_of_counts(counts, q) == pytest.approx(np.percentile(values, q), abs=1e-9)
