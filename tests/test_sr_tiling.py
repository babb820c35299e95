"""Tiled inference equals untiled inference once the overlap reaches the receptive radius."""
import pytest
import torch

from spectralkd.errors import UserError
from spectralkd.sr.inference import InferenceUpscaler
from spectralkd.sr.mdbn import MDBN, receptive_radius
from spectralkd.sr.tiling import upscale


@pytest.mark.parametrize("scale", [2, 3])
def test_tiled_equals_untiled(scale):
    torch.manual_seed(0)
    model = MDBN(num_feat=8, num_block=6, upscale=scale).double().eval()
    lr = torch.rand(1, 3, 58, 41, dtype=torch.float64)
    with torch.no_grad():
        full = upscale(model, lr)
        tiled = upscale(model, lr, tile=24)  # default overlap = receptive radius (28)
        assert tiled.shape == full.shape == (1, 3, 58 * scale, 41 * scale)
        assert (tiled - full).abs().max().item() < 1e-12
        with pytest.warns(UserWarning, match="overlap 3 < receptive radius 28"):
            short = upscale(model, lr, tile=24, overlap=3)
        assert (short - full).abs().max().item() > 1e-6  # a too-small overlap is visible: the test can fail


def test_tiled_3d_input_tuned_forward_and_bad_tile():
    torch.manual_seed(1)
    model = MDBN(num_feat=8, num_block=1, upscale=2).eval()
    assert receptive_radius(model) == 8
    lr = torch.rand(3, 33, 31)
    with torch.no_grad():
        full = model(lr[None])[0]
    tuned = InferenceUpscaler(MDBN(num_feat=8, num_block=1, upscale=2).eval())
    tuned.model.load_state_dict(model.state_dict())
    out = upscale(tuned.model, lr, tile=16, forward=tuned)
    assert out.shape == (3, 66, 62) and (out - full).abs().max().item() < 1e-5
    with pytest.raises(UserError, match="positive"):
        upscale(model, lr, tile=0)
