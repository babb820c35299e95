"""The GoogLeNet-like inception SR net: MDBN's parameter count, arch registration and loading."""
from __future__ import annotations

import pytest
import torch

from spectralkd.errors import UserError
from spectralkd.runtime.checkpoint import save_weights
from spectralkd.sr.inception import InceptionBlock, InceptionSRNet
from spectralkd.sr.loading import ALLOWED_ARCHS, build_model, infer_arch, load_mdbn, load_sr_model
from spectralkd.sr.mdbn import MDBN, count_params, receptive_radius


def test_parameter_count_matches_mdbn_within_one_percent():
    # 12 blocks × (34·50² + 518·50 + 64) = 12 × 110,964 in the body; stem/tail as MDBN's
    assert count_params(InceptionBlock(64, 50)) == 34 * 50**2 + 518 * 50 + 64 == 110_964
    for scale in (2, 3, 4):
        inc, mdbn = count_params(InceptionSRNet(upscale=scale)), count_params(MDBN(upscale=scale))
        assert inc - mdbn == 12 * 110_964 - 36 * (64 * 64 * 9 + 64)
        assert abs(inc - mdbn) / mdbn < 0.01
    assert count_params(InceptionSRNet(upscale=2)) == 1_519_731 and count_params(MDBN(upscale=2)) == 1_517_571


def test_block_has_four_parallel_branches_of_different_kernels_and_a_residual():
    block = InceptionBlock(8, 4)
    kernels = {m.kernel_size[0] for m in block.modules() if isinstance(m, torch.nn.Conv2d)}
    assert kernels == {1, 3, 5}
    for p in block.fuse.parameters():  # zero fusion → identity block
        torch.nn.init.zeros_(p)
    x = torch.randn(2, 8, 9, 9)
    assert torch.equal(block(x), x)


def test_receptive_radius_counts_only_the_deepest_branch():
    # conv_first 1 + 12 × 2 (reduce → 5×5) + conv_after_body 1 + upsample conv 1 + conv_last 1/2 → 27.5 → 28
    assert receptive_radius(InceptionSRNet(num_feat=8, num_block=12, upscale=2)) == 28
    net = InceptionSRNet(num_feat=8, num_block=2, upscale=2).eval()
    x = torch.zeros(1, 3, 31, 31)
    x.requires_grad_(True)
    net(x)[0, :, 30, 30].sum().backward()  # output centre pixel ↔ LR (15, 15)
    touched = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero()
    r = receptive_radius(net)
    assert touched[:, 0].min() >= 15 - r and touched[:, 0].max() <= 15 + r


def test_arch_registered_and_round_trips(tmp_path):
    assert "inception" in ALLOWED_ARCHS
    torch.manual_seed(0)
    model = build_model({"arch": "inception", "num_feat": 16, "num_block": 2, "upscale": 2, "num_in_ch": 3,
                         "num_out_ch": 3})
    assert isinstance(model, InceptionSRNet) and model.branch_feat == 12
    path = tmp_path / "best.safetensors"
    save_weights(path, model.state_dict(), {"arch": "inception"})
    arch = infer_arch(model.state_dict(), path)
    assert arch == {"arch": "inception", "num_feat": 16, "num_block": 2, "upscale": 2, "num_in_ch": 3,
                    "num_out_ch": 3, "branch_feat": 12}
    loaded = load_sr_model(path, 2)
    x = torch.rand(1, 3, 12, 12)
    with torch.inference_mode():
        assert torch.equal(loaded(x), model.eval()(x))
    with pytest.raises(UserError, match="are an inception net, not MDBN"):
        load_mdbn(path, 2)
    with pytest.raises(UserError, match="allowed: mdbn, plain, inception"):
        build_model({"arch": "googlenet", "num_feat": 8, "num_block": 1, "upscale": 2, "num_in_ch": 3,
                     "num_out_ch": 3})
