"""Channel entropy: hand-computed values and a numpy.histogram loop per position (the authors' way)."""
import math

import numpy as np
import pytest
import torch

from spectralkd.errors import UserError
from spectralkd.spectral import channel_entropy
from spectralkd.spectral.entropy import ChannelHistogram, histogram_edges


def numpy_entropy(maps, bins):
    lo = min(float(m.min()) for m in maps)
    hi = max(float(m.max()) for m in maps)
    out = []
    for m in maps:
        vals = []
        for b in range(m.shape[0]):
            for y in range(m.shape[2]):
                for x in range(m.shape[3]):
                    counts, _ = np.histogram(m[b, :, y, x], bins=bins, range=(lo, hi))
                    p = counts[counts > 0] / counts.sum()
                    vals.append(-(p * np.log2(p)).sum())
        out.append(np.mean(vals))
    return np.array(out)


def test_entropy_hand_computed():
    # global range [0, 1]; position 1: [0, 0, 1, 1] with 2 bins -> counts 2, 2 -> 1 bit;
    # position 2: [0, .5, .5, 1] -> .5 is on the middle edge and goes right: counts 1, 3 -> H(1/4, 3/4).
    x = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.5, 0.5, 1.0]]).T.reshape(1, 4, 1, 2)
    h2 = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    assert float(channel_entropy([x], bins=2)[0]) == pytest.approx((1.0 + h2) / 2, abs=1e-12)
    # 4 bins on [0, 1]: [0, .25, .5, 1] -> one value per bin (1.0 in the closed last bin) -> 2 bits
    y = torch.tensor([0.0, 0.25, 0.5, 1.0]).reshape(1, 4, 1, 1)
    assert float(channel_entropy([y], bins=4)[0]) == pytest.approx(2.0, abs=1e-12)


def test_range_is_global_over_layers():
    # Alone, layer a spreads over 2 bins (1 bit); next to layer b (range 0..100) all of a falls in bin 0 (0 bits).
    a = torch.tensor([0.0, 0.0, 1.0, 1.0]).reshape(1, 4, 1, 1)
    b = torch.tensor([0.0, 25.0, 50.0, 100.0]).reshape(1, 4, 1, 1)
    assert float(channel_entropy([a], bins=2)[0]) == pytest.approx(1.0)
    both = channel_entropy([a, b], bins=2)
    assert float(both[0]) == pytest.approx(0.0, abs=1e-12)
    assert float(both[1]) == pytest.approx(-(0.5 * math.log2(0.5)) * 2)  # 25, 0 | 50, 100 -> 2, 2


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bins", [7, 100])
def test_entropy_matches_numpy_histogram_loop(dtype, bins):
    rng = np.random.default_rng(bins)
    a = rng.normal(size=(2, 24, 3, 4)).astype(dtype)
    b = (rng.standard_t(3, size=(3, 10, 2, 2)) * 3).astype(dtype)
    # put values exactly on bin edges (the numpy convention decides their bin)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    edges = np.linspace(float(lo), float(hi), bins + 1, dtype=dtype)
    a[0, :8, 0, 0] = edges[:8]
    b[0, :5, 1, 1] = edges[-5:]
    expected = numpy_entropy([a, b], bins)
    got = channel_entropy([torch.from_numpy(a), torch.from_numpy(b)], bins=bins)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12, atol=1e-12)


def test_bin_index_equals_numpy_on_edges_and_random_values():
    rng = np.random.default_rng(3)
    v = np.concatenate([rng.uniform(-3, 5, 5000), np.linspace(-3, 5, 101)]).astype(np.float32)
    v = np.concatenate([v, np.nextafter(v, np.float32(np.inf)), np.nextafter(v, np.float32(-np.inf))])
    v = np.clip(v, np.float32(-3), np.float32(5))
    edges = histogram_edges(-3.0, 5.0, 100, torch.float32)
    idx = ChannelHistogram(edges).bin_index(torch.from_numpy(v)).numpy()
    expected, _ = np.histogram(v, bins=100, range=(-3.0, 5.0))
    np.testing.assert_array_equal(np.bincount(idx, minlength=100), expected)
    # per value: edge_k <= v < edge_k+1 (last closed)
    np.testing.assert_array_equal(np.clip(np.searchsorted(edges, v, side="right") - 1, 0, 99), idx)


def test_chunking_and_positions_agree():
    torch.manual_seed(1)
    x = torch.randn(5, 16, 3, 3)
    edges = histogram_edges(float(x.min()), float(x.max()), 10, torch.float32)
    whole = ChannelHistogram(edges).sum(x)
    for chunk in (16, 40, 16 * 9 * 2):  # part of an image, several images
        assert ChannelHistogram(edges, chunk_elements=chunk).sum(x) == pytest.approx(whole, abs=1e-9)
    assert ChannelHistogram(edges)._fast_sum(x.reshape(5, 16, 9)) is not None  # the fused path is the one tested
    per_position = ChannelHistogram(edges).positions(x)
    assert per_position.shape == (5, 3, 3)
    assert float(per_position.sum()) == pytest.approx(whole, abs=1e-9)
    counts, _ = np.histogram(x[2, :, 1, 0].numpy(), bins=10, range=(float(x.min()), float(x.max())))
    p = counts[counts > 0] / 16
    assert float(per_position[2, 1, 0]) == pytest.approx(-(p * np.log2(p)).sum(), abs=1e-12)


@pytest.mark.parametrize("lo,hi", [(1000.0, 1000.5), (-1e-3, 2e-3), (-7.0, -6.999)])
def test_bin_index_with_awkward_ranges(lo, hi):
    # ranges far from zero relative to their width stress the rounding bound (and use the two-sided fallback)
    rng = np.random.default_rng(4)
    edges = histogram_edges(lo, hi, 100, torch.float32)
    v = np.concatenate([rng.uniform(lo, hi, 3000).astype(np.float32), edges]).astype(np.float32)
    v = np.clip(np.concatenate([v, np.nextafter(v, np.float32(np.inf)), np.nextafter(v, np.float32(-np.inf))]),
                edges[0], edges[-1])
    idx = ChannelHistogram(edges).bin_index(torch.from_numpy(v)).numpy()
    np.testing.assert_array_equal(np.bincount(idx, minlength=100), np.histogram(v, bins=100, range=(lo, hi))[0])


def test_values_outside_a_given_range_count_in_the_edge_bins():
    # pass 2 may see values just outside the pass-1 range (nondeterministic devices): they are clamped, which
    # equals numpy.histogram of the clipped values
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 30, 3, 3)).astype(np.float32)
    lo, hi = -1.0, 1.5
    clipped = np.clip(x, np.float32(lo), np.float32(hi))
    clipped[0, 0, 0, 0], clipped[0, 1, 0, 0] = lo, hi  # pin the global range of the reference to (lo, hi)
    x[0, 0, 0, 0], x[0, 1, 0, 0] = clipped[0, 0, 0, 0], clipped[0, 1, 0, 0]
    got = channel_entropy([torch.from_numpy(x)], bins=12, value_range_=(lo, hi))
    np.testing.assert_allclose(got.numpy(), numpy_entropy([clipped], 12), rtol=1e-12)


def test_constant_maps_and_bad_values():
    # numpy widens a zero-width range to [v - .5, v + .5]; all values in one bin -> 0 bits
    assert float(channel_entropy([torch.full((2, 8, 2, 2), 3.0)])[0]) == 0.0
    bad = torch.zeros(1, 4, 2, 2)
    bad[0, 1, 1, 1] = float("nan")
    with pytest.raises(UserError, match="layer 1 has NaN"):
        channel_entropy([torch.zeros(1, 4, 2, 2), bad])
    with pytest.raises(UserError, match="bins"):
        channel_entropy([torch.zeros(1, 4, 2, 2)], bins=0)
