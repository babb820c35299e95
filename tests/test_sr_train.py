"""A tiny SR training run, its exact resumption, and a tiny spectral distillation run (seconds each)."""

import numpy as np
import pytest
import torch
from PIL import Image

from spectralkd.runtime.checkpoint import load_weights
from spectralkd.runtime.runlog import read_jsonl
from spectralkd.errors import UserError
from spectralkd.sr.bicubic import imresize_uint8
from spectralkd.sr.distill import SRDistillLoss, default_pairs
from spectralkd.sr.loading import load_mdbn
from spectralkd.sr.trainer import train_sr


@pytest.fixture(scope="module")
def sr_data(tmp_path_factory):
    return make_sr_data(tmp_path_factory.mktemp("srdata"))


def make_sr_data(root):
    """Smooth random HR images (training) and a 2-image paired x2 set made with our bicubic, under ``root``."""
    rng = np.random.default_rng(0)
    (root / "hr").mkdir()
    for i in range(3):
        small = rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)
        big = imresize_uint8(torch.from_numpy(small).permute(2, 0, 1).contiguous(), 4).permute(1, 2, 0).numpy()
        Image.fromarray(big).save(root / "hr" / f"{i}.png")
        if i < 2:
            d = root / "val" / "image_SRF_2"
            d.mkdir(parents=True, exist_ok=True)
            Image.fromarray(big[:32, :32]).save(d / f"v{i}_HR.png")
            lr = imresize_uint8(torch.from_numpy(big[:32, :32].copy()).permute(2, 0, 1).contiguous(), 0.5)
            Image.fromarray(lr.permute(1, 2, 0).numpy()).save(d / f"v{i}_LR.png")
    return root


def _sets(sr_data, out, **extra) -> list[str]:
    """``--set`` overrides of a tiny run into ``out``."""
    sets = [f"out={out}", f"data.train={sr_data / 'hr'}", f"data.val=[{sr_data / 'val'}]", "model.num_feat=8",
            "model.num_block=2", "data.patch_size=16", "data.batch_size=4", "data.length=24", "sched.total_iters=12",
            "val.every=6", "log_every=3", "progress=false", "threads=1", "device=cpu"]
    return sets + [f"{k}={v}" for k, v in extra.items()]


def test_train_and_exact_resume(sr_data, tmp_path):
    full = train_sr(overrides=_sets(sr_data, tmp_path / "full"))
    assert full["iter"] == 12 and not full["stopped_early"]
    files = {p.name for p in (tmp_path / "full").iterdir()}
    assert {"config.yaml", "log.jsonl", "last.pt", "last.safetensors", "best.safetensors"} <= files
    log = read_jsonl(tmp_path / "full" / "log.jsonl")
    vals = [r for r in log if "val" in r]
    assert [r["iter"] for r in vals] == [6, 12] and 0 < vals[-1]["val"]["val"]["psnr"] < 100
    assert [r["iter"] for r in log if "loss" in r] == [3, 6, 9, 12]
    losses = [r["loss"] for r in log if "loss" in r]
    assert all(np.isfinite(losses))
    _, card = load_weights(tmp_path / "full" / "best.safetensors")
    assert card["iter"] == full["best"]["iter"] and card["ema"] is True

    part = train_sr(overrides=_sets(sr_data, tmp_path / "part", stop_iter=6))
    assert part["iter"] == 6 and part["stopped_early"]
    with pytest.raises(UserError, match="already holds a run"):
        train_sr(overrides=_sets(sr_data, tmp_path / "part"))
    with pytest.raises(UserError, match="config key 'optim.lr' differs from the saved run"):
        train_sr(overrides=["optim.lr=1e-3"], resume=tmp_path / "part")
    resumed = train_sr(overrides=["stop_iter=null"], resume=tmp_path / "part")
    assert resumed["iter"] == 12
    a, _ = load_weights(tmp_path / "full" / "last.safetensors")
    b, _ = load_weights(tmp_path / "part" / "last.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)  # resumption reproduces the uninterrupted run exactly
    plog = read_jsonl(tmp_path / "part" / "log.jsonl")
    assert [r["iter"] for r in plog if "loss" in r] == [3, 6, 9, 12]  # no repeated records
    model = load_mdbn(tmp_path / "part" / "best.safetensors", 2)
    assert model.num_feat == 8 and model.num_block == 2


def test_distill_tiny(sr_data, tmp_path):
    train_sr(overrides=_sets(sr_data, tmp_path / "teacher", **{"sched.total_iters": 6}))
    teacher = tmp_path / "teacher" / "best.safetensors"
    sets = _sets(sr_data, tmp_path / "student", **{"teacher.weights": str(teacher), "model.num_feat": 4,
                                                     "model.num_block": 1, "sched.total_iters": 6, "distill.beta": 0.5})
    out = train_sr(overrides=sets, distill=True)
    log = read_jsonl(tmp_path / "student" / "log.jsonl")
    assert log[0]["distill_pairs"] == {"student": [0], "teacher": [1]}
    assert all(r["loss_fft"] > 0 for r in log if "loss" in r)
    assert out["iter"] == 6
    with pytest.raises(UserError, match="needs teacher.weights"):
        train_sr(overrides=_sets(sr_data, tmp_path / "s2"), distill=True)


def test_pairs_and_loss_parts():
    assert default_pairs(3, 6) == ([0, 1, 2], [1, 3, 5])
    assert default_pairs(6, 6)[1] == [0, 1, 2, 3, 4, 5]
    sr, hr = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    s = [torch.zeros(1, 4, 4, 4)]
    t = [torch.ones(1, 8, 4, 4)]  # teacher pooled 8→4 channels; spectrum of ones: DC = 4 (ortho) in one bin
    loss, parts = SRDistillLoss(beta=2.0)(sr, hr, s, t)
    # rfft2 ortho of a 4×4 map of ones: DC 4, else 0; stacked real/imag over 4×3×2 values per channel → MSE 16/24
    assert parts["loss_l1"].item() == pytest.approx(0.5)
    assert parts["loss_fft"].item() == pytest.approx(16 / 24)
    assert loss.item() == pytest.approx(0.5 + 2.0 * 16 / 24)
