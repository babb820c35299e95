"""benchmarks/bench_sr_peers.py: each lightweight SR peer builds at x2 and x4 from spandrel's definitions at its
published configuration, upscales, and has the published parameter count where the paper's figure was verified."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("spandrel")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_sr_peers as bench  # noqa: E402


@pytest.mark.parametrize("name", bench.PEERS + ("MDBN",))
@pytest.mark.parametrize("scale", [2, 4])
def test_peer_builds_and_upscales(name, scale):
    torch.manual_seed(0)
    model = bench.build_peer(name, scale)
    with torch.inference_mode():
        out = model(torch.rand(1, 3, 16, 16))
    assert out.shape == (1, 3, 16 * scale, 16 * scale)
    params = bench.inference_params(name, model)
    published = bench.PUBLISHED.get(name, {}).get("params", {}).get(scale)
    if published:
        assert abs(params - published) / published <= 0.02, (name, scale, params, published)


def test_published_counts_checked():
    # OmniSR x4: "792K parameters" (Wang et al., CVPR 2023, abstract); spandrel's definition holds 805,376 (+1.7 %)
    assert bench.inference_params("OmniSR", bench.build_peer("OmniSR", 4)) == 805_376
    # SPAN's stored training branches are not inference parameters: 48 channels, x4 → 426,288 in eval mode
    span = bench.build_peer("SPAN", 4)
    assert bench.inference_params("SPAN", span) == 426_288 < sum(p.numel() for p in span.parameters())
    assert bench.inference_params("MDBN", bench.build_peer("MDBN", 2)) == 1_517_571
