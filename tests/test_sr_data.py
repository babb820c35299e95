"""SR datasets: both paired layouts, size checks, grayscale/RGBA, training patches equal whole-image LR crops."""
import numpy as np
import pytest
import torch
from PIL import Image

from spectralkd.errors import UserError
from spectralkd.sr.bicubic import imresize_uint8
from spectralkd.sr.datasets import HRPatches, PairedSet, find_pairs, lr_patch


def _save(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_srf_layout_and_hr_lr_layout(tmp_path):
    rng = np.random.default_rng(0)
    hr, lr = rng.integers(0, 256, (12, 8, 3), dtype=np.uint8), rng.integers(0, 256, (6, 4, 3), dtype=np.uint8)
    _save(tmp_path / "A" / "image_SRF_2" / "img_001_SRF_2_HR.png", hr)
    _save(tmp_path / "A" / "image_SRF_2" / "img_001_SRF_2_LR.png", lr)
    ds = PairedSet(tmp_path / "A", 2)
    assert ds.name == "A" and len(ds) == 1
    name, l, h = ds[0]
    assert name == "img_001_SRF_2" and np.array_equal(l, lr) and np.array_equal(h, hr)
    assert find_pairs(tmp_path / "A" / "image_SRF_2", 2)[0] == "A"
    with pytest.raises(UserError, match="scale 3 missing"):
        PairedSet(tmp_path / "A", 3)
    _save(tmp_path / "B" / "HR" / "0001.png", hr)
    _save(tmp_path / "B" / "LR" / "X2" / "0001x2.png", lr)
    name, l, h = PairedSet(tmp_path / "B", 2)[0]
    assert name == "0001" and np.array_equal(h, hr)


def test_size_mismatch_crop_with_warning_or_error(tmp_path):
    rng = np.random.default_rng(1)
    lr = rng.integers(0, 256, (6, 4, 3), dtype=np.uint8)
    _save(tmp_path / "S" / "HR" / "a.png", rng.integers(0, 256, (13, 9, 3), dtype=np.uint8))  # not divisible by 2
    _save(tmp_path / "S" / "LR" / "a.png", lr)
    with pytest.warns(UserWarning, match="not divisible by scale 2; cropped to 8×12"):
        _, _, h = PairedSet(tmp_path / "S", 2)[0]
    assert h.shape == (12, 8, 3)
    _save(tmp_path / "S" / "HR" / "a.png", rng.integers(0, 256, (20, 8, 3), dtype=np.uint8))
    with pytest.raises(UserError, match=r"LR .*a\.png is 4×6 but HR .*a\.png is 8×20"):
        PairedSet(tmp_path / "S", 2)[0]
    _save(tmp_path / "S" / "HR" / "b.png", lr)
    with pytest.raises(UserError, match="no LR image with the same name"):
        PairedSet(tmp_path / "S", 2)


def test_grayscale_and_rgba_become_rgb(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(8, 6)
    rgba = np.dstack([np.full((4, 3), c, np.uint8) for c in (10, 20, 30, 0)])
    _save(tmp_path / "G" / "HR" / "g.png", gray)
    _save(tmp_path / "G" / "LR" / "g.png", rgba)
    _, l, h = PairedSet(tmp_path / "G", 2)[0]
    assert h.shape == (8, 6, 3) and all(np.array_equal(h[..., c], gray) for c in range(3))
    assert l.shape == (4, 3, 3) and l[0, 0].tolist() == [10, 20, 30]  # alpha dropped, colour kept


def test_lr_patch_equals_crop_of_whole_image_lr():
    rng = np.random.default_rng(2)
    hr = rng.integers(0, 256, (60, 84, 3), dtype=np.uint8)
    for s in (2, 3, 4):
        full = imresize_uint8(torch.from_numpy(hr[: 60 - 60 % s, : 84 - 84 % s]).permute(2, 0, 1).contiguous(),
                              1 / s).permute(1, 2, 0).numpy()
        p = 5
        for top, left in [(0, 0), (3, 4), (full.shape[0] - p, full.shape[1] - p), (0, full.shape[1] - p)]:
            assert np.array_equal(lr_patch(hr[: 60 - 60 % s, : 84 - 84 % s], top, left, p, s),
                                  full[top: top + p, left: left + p]), (s, top, left)


def test_training_patches_shapes_ranges_reproducible(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(3):
        _save(tmp_path / "hr" / f"{i}.png", rng.integers(0, 256, (40, 50, 3), dtype=np.uint8))
    ds = HRPatches(tmp_path / "hr", 2, 16, length=10, seed=7)
    lr, hr = ds[4]
    assert lr.shape == (3, 8, 8) and hr.shape == (3, 16, 16) and lr.dtype == torch.float32
    assert 0 <= lr.min() and hr.max() <= 1
    again = HRPatches(tmp_path / "hr", 2, 16, length=10, seed=7)[4]
    assert torch.equal(again[0], lr) and torch.equal(again[1], hr)
    ds.set_epoch(1)
    assert not torch.equal(ds[4][1], hr)
    # without augmentation the LR patch is exactly the bicubic downscale of the HR patch's neighbourhood
    plain = HRPatches(tmp_path / "hr", 2, 16, length=10, seed=7, augment=False)
    lr, hr = plain[0]
    assert lr.shape == (3, 8, 8)
    with pytest.raises(UserError, match="multiple of the scale 3"):
        HRPatches(tmp_path / "hr", 3, 16)
    with pytest.raises(UserError, match="smaller than the HR patch size 48"):
        HRPatches(tmp_path / "hr", 2, 48)
