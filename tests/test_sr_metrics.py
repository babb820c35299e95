"""PSNR/SSIM on BT.601 Y against hand-computed values, and the published bicubic table from the shared sets."""
import math

import numpy as np
import pytest
import torch

from spectralkd.errors import UserError
from spectralkd.sr.bicubic import imresize_uint8
from spectralkd.sr.color import rgb_to_y
from spectralkd.sr.datasets import PairedSet
from spectralkd.sr.metrics import gaussian_1d, psnr, ssim


def test_rgb_to_y_bt601():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [10, 20, 30]]], dtype=np.uint8)
    y = rgb_to_y(px)
    expected = [16.0, 235.0, 16 + 65.481, 16 + (65.481 * 10 + 128.553 * 20 + 24.966 * 30) / 255]
    assert np.allclose(y[0], expected)
    assert rgb_to_y(px, round_to_uint8=True)[0, 3] == round(expected[3])


def test_psnr_hand_computed_and_border_crop():
    ref = np.full((4, 4, 3), 100, np.uint8)
    img = ref.copy()
    img[1, 2] += 10  # Y moves by 10*(65.481+128.553+24.966)/255 = 8.588235...
    dy = 10 * 219.0 / 255
    assert psnr(img, ref) == pytest.approx(10 * math.log10(255**2 / (dy**2 / 16)), abs=1e-9)
    assert psnr(img, ref, y_channel=False) == pytest.approx(10 * math.log10(255**2 / (100 / 16)), abs=1e-9)
    edge = ref.copy()
    edge[0, 0] = 0
    assert psnr(edge, ref, crop_border=1) == math.inf  # the only difference lies in the cropped border
    assert psnr(edge, ref, crop_border=0) < 40
    with pytest.raises(UserError, match="differs from the reference"):
        psnr(img[:3], ref)


def test_ssim_flat_images_and_a_single_window_by_definition():
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    a, b = np.full((16, 16), 100.0), np.full((16, 16), 110.0)
    assert ssim(a, b) == pytest.approx((2 * 100 * 110 + c1) / (100**2 + 110**2 + c1), abs=1e-12)
    assert ssim(a, a) == pytest.approx(1.0)
    # an 11x11 image has exactly one valid window: compute SSIM straight from the definition
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (11, 11)).astype(float), rng.integers(0, 256, (11, 11)).astype(float)
    w = np.outer(gaussian_1d(), gaussian_1d())
    mx, my = (w * x).sum(), (w * y).sum()
    vx, vy, cxy = (w * (x - mx) ** 2).sum(), (w * (y - my) ** 2).sum(), (w * (x - mx) * (y - my)).sum()
    expected = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    assert ssim(x, y) == pytest.approx(expected, rel=1e-10)
    g = gaussian_1d()
    assert g.sum() == pytest.approx(1) and g[5] / g[4] == pytest.approx(math.exp(1 / (2 * 1.5**2)))
    with pytest.raises(UserError, match="smaller than the 11"):
        ssim(x[:10], y[:10])


def _bicubic_scores(root, scale):
    ps, ss = [], []
    for _, lr, hr in PairedSet(root, scale):
        up = imresize_uint8(torch.from_numpy(lr).permute(2, 0, 1).contiguous(), scale).permute(1, 2, 0).numpy()
        ps.append(psnr(up, hr, crop_border=scale))
        ss.append(ssim(up, hr, crop_border=scale))
    return float(np.mean(ps)), float(np.mean(ss))


@pytest.mark.parametrize("scale,ref_psnr,ref_ssim", [(2, 33.66, 0.9299), (3, 30.39, 0.8682), (4, 28.42, 0.8104)])
def test_bicubic_set5_matches_the_published_table(shared_data, scale, ref_psnr, ref_ssim):
    p, s = _bicubic_scores(shared_data / "sr" / "Set5", scale)
    assert abs(p - ref_psnr) <= 0.02 and abs(s - ref_ssim) <= 0.002, (p, s)


@pytest.mark.parametrize("scale,ref_psnr", [(2, 30.33), (3, 27.63), (4, 26.09)])
def test_bicubic_set14_copy(shared_data, scale, ref_psnr):
    # this Set14 copy (img_003 stored as grayscale) measures ~0.09 dB above the published 30.24/27.55/26.00
    p, _ = _bicubic_scores(shared_data / "sr" / "Set14", scale)
    assert abs(p - ref_psnr) <= 0.02, p
