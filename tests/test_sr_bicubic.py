"""MATLAB-compatible bicubic imresize: hand-computed weights, uint8 rounding, the shared LR files."""
import numpy as np
import pytest
import torch

from spectralkd.errors import UserError
from spectralkd.sr.bicubic import contributions, imresize, imresize_uint8, to_uint8


def test_upscale_by_two_hand_computed():
    # cubic(0.25)=0.8671875, cubic(0.75)=0.2265625, cubic(1.25)=-0.0703125, cubic(1.75)=-0.0234375; output x=1
    # samples u=0.75: taps 0 and -1 mirror onto pixel 1 and 2 -> 1.09375*v1 - 0.09375*v2, etc.
    out = imresize(torch.tensor([[0.0, 1.0]], dtype=torch.float64), 2)
    expected = torch.tensor([-0.09375, 0.203125, 0.796875, 1.09375], dtype=torch.float64)
    assert out.shape == (2, 4)
    assert torch.allclose(out, expected.expand(2, 4), atol=1e-12)


def test_antialiased_downscale_by_two_hand_computed():
    # shrinking stretches the kernel: h(x) = 0.5*cubic(0.5x), 10 taps; output 1 sees 0.546875, 0.3984375,
    # 0.1015625, -0.046875 on pixels 1..4 after symmetric mirroring.
    out = imresize(torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64), 0.5)
    assert out.shape == (1, 2)
    assert torch.allclose(out, torch.tensor([[-0.046875, 0.546875]], dtype=torch.float64), atol=1e-12)
    w, idx = contributions(4, 2, 0.5)
    assert np.allclose(w.sum(1), 1) and w.shape == (2, 10)
    assert idx.min() >= 0 and idx.max() <= 3


def test_no_antialiasing_uses_the_plain_kernel_and_constant_images_stay_constant():
    w, _ = contributions(8, 4, 0.5, antialiasing=False)
    assert w.shape == (4, 6)
    img = torch.full((3, 7, 5), 0.3, dtype=torch.float64)
    for s in (0.5, 1 / 3, 2, 3):
        out = imresize(img, s)
        assert out.shape == (3, int(np.ceil(7 * s - 1e-9)), int(np.ceil(5 * s - 1e-9)))
        assert torch.allclose(out, torch.full_like(out, 0.3))


def test_uint8_rounding_half_away_and_saturation():
    vals = torch.tensor([-3.0, -0.4, 0.49, 0.5, 2.5, 254.5, 255.6, 300.0], dtype=torch.float64)
    assert to_uint8(vals).tolist() == [0, 0, 0, 1, 3, 255, 255, 255]
    out = imresize_uint8(torch.tensor([[0, 255]], dtype=torch.uint8), 2)
    # 255*[-0.09375, 0.203125, 0.796875, 1.09375] -> [-23.9, 51.8, 203.2, 278.9] -> saturated and rounded
    assert out.tolist() == [[0, 52, 203, 255], [0, 52, 203, 255]]
    with pytest.raises(UserError, match="uint8"):
        imresize_uint8(torch.zeros(2, 2), 2)
    with pytest.raises(UserError, match="float"):
        imresize(torch.zeros(2, 2, dtype=torch.uint8), 2)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_reproduces_the_matlab_lr_files_of_set5(shared_data, scale):
    from spectralkd.sr.datasets import PairedSet

    ds = PairedSet(shared_data / "sr" / "Set5", scale)
    for name, lr, hr in ds:
        ours = imresize_uint8(torch.from_numpy(hr).permute(2, 0, 1).contiguous(), 1 / scale).permute(1, 2, 0).numpy()
        assert ours.shape == lr.shape
        # every interior pixel equals MATLAB's (the distributed LR borders were made from uncropped images)
        assert np.array_equal(ours[scale:-scale, scale:-scale], lr[scale:-scale, scale:-scale]), name
