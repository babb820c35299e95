"""Streaming accumulation equals one-shot computation, and every measure equals the numpy reference."""

import numpy as np
import pytest
import torch

from conftest import load_benchmark
from spectralkd.errors import UserError
from spectralkd.spectral import RunningMeasures, channel_entropy, channel_spectrum, measure_all


@pytest.fixture(scope="module")
def reference():
    return load_benchmark("spectral_reference")


def make_maps(seed=0, b=6, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 12, 4, 4, generator=g, dtype=dtype),
            torch.randn(b, 12, 4, 4, generator=g, dtype=dtype).cumsum(1) * 0.5,  # smooth across channels
            torch.randn(b, 20, 2, 3, generator=g, dtype=dtype) * 3 + 1]


def test_streaming_equals_one_shot():
    maps = make_maps()
    whole = measure_all(maps, layer_ids=[0, 5, 9], bins=17)
    acc = RunningMeasures([0, 5, 9], bins=17)
    for s in range(0, 6, 4):  # batches of 4 and 2
        acc.update([m[s:s + 4] for m in maps])
    for s in range(0, 6, 4):
        acc.update_entropy([m[s:s + 4] for m in maps])
    for a, b in zip(acc.results(), whole):
        assert a.index == b.index and a.shape == b.shape and a.num_images == 6
        for key in ("intensity", "entropy", "rms", "high_freq_ratio", "min", "max"):
            assert getattr(a, key) == pytest.approx(getattr(b, key), rel=1e-12)
        assert a.svd_ranks == b.svd_ranks
        np.testing.assert_allclose(a.spectrum, b.spectrum, rtol=1e-12)
        np.testing.assert_allclose(a.radial_power, b.radial_power, rtol=1e-12)
    # the one-shot functions agree too
    assert [r.entropy for r in whole] == pytest.approx(channel_entropy(maps, bins=17).tolist(), rel=1e-12)
    np.testing.assert_allclose(whole[1].spectrum, channel_spectrum(maps[1]).numpy(), rtol=1e-12)


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_all_measures_equal_numpy_reference(reference, dtype, rtol):
    maps = make_maps(1, b=3, dtype=dtype)
    ours = measure_all(maps)
    ref = reference.all_measures([m.numpy() for m in maps])
    for a, r in zip(ours, ref):
        for key in ("intensity", "entropy", "rms", "high_freq_ratio"):
            assert getattr(a, key) == pytest.approx(r[key], rel=rtol), key
        assert a.svd_ranks[0.99] == r["svd_rank_99"]
        np.testing.assert_allclose(a.spectrum, r["spectrum"], rtol=rtol)
        np.testing.assert_allclose(a.radial_power, r["radial_power"], rtol=rtol)


def test_shape_change_and_missing_pass():
    acc = RunningMeasures()
    acc.update([torch.randn(2, 4, 3, 3)])
    with pytest.raises(UserError, match="changed shape"):
        acc.update([torch.randn(2, 5, 3, 3)])
    assert acc.results()[0].entropy is None  # no entropy pass yet
    with pytest.raises(UserError, match="no batches"):
        RunningMeasures().value_range
