"""MDBN structure: parameter counts, published key names, checkpoint formats, branch hooks, receptive field."""
import pytest
import torch

from spectralkd.runtime.checkpoint import save_weights
from spectralkd.errors import UserError
from spectralkd.sr.branches import branch_maps
from spectralkd.sr.loading import load_mdbn, load_sr_model
from spectralkd.sr.mdbn import MDBN, count_params, receptive_radius
from spectralkd.sr.plainnet import PlainResNet


@pytest.mark.parametrize("scale,params", [(2, 1_517_571), (3, 1_702_211), (4, 1_665_283)])
def test_parameter_counts_match_the_paper(scale, params):
    assert count_params(MDBN(upscale=scale)) == params
    assert count_params(PlainResNet(upscale=scale)) == params  # the structural comparison is at equal size


def test_state_dict_keys_are_the_published_ones():
    keys = set(MDBN(upscale=4).state_dict())
    expected = {"conv_first.weight", "conv_first.bias", "conv_after_body.weight", "conv_after_body.bias",
                "upsample.0.weight", "upsample.0.bias", "upsample.2.weight", "upsample.2.bias",
                "conv_last.weight", "conv_last.bias"}
    for i in range(6):
        for b in (1, 2):
            for c in ("uconv1", "uconv2", "dconv"):
                expected |= {f"body.{i}.baseblock{b}.{c}.weight", f"body.{i}.baseblock{b}.{c}.bias"}
    assert keys == expected
    assert {k for k in MDBN(upscale=3).state_dict() if k.startswith("upsample")} == {"upsample.0.weight", "upsample.0.bias"}
    assert MDBN(upscale=3).state_dict()["upsample.0.weight"].shape == (576, 64, 3, 3)


def test_forward_shape_and_unsupported_scale():
    m = MDBN(num_feat=8, num_block=1, upscale=3)
    assert m(torch.rand(2, 3, 5, 7)).shape == (2, 3, 15, 21)
    with pytest.raises(UserError, match="scale 5 is not supported"):
        MDBN(upscale=5)


def _tiny(scale=2):
    torch.manual_seed(0)
    return MDBN(num_feat=8, num_block=2, upscale=scale).eval()


def test_basicsr_params_ema_checkpoint_round_trip(tmp_path):
    model, other = _tiny(), _tiny()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1.0)  # 'params' differs from 'params_ema': EMA must win
    path = tmp_path / "MDBN_x2.pth"
    torch.save({"params": other.state_dict(), "params_ema": model.state_dict()}, path)
    loaded = load_mdbn(path, 2)
    x = torch.rand(1, 3, 6, 6)
    assert torch.equal(loaded(x), model(x))
    torch.save({"params": other.state_dict()}, tmp_path / "p.pth")
    assert torch.equal(load_mdbn(tmp_path / "p.pth", 2)(x), other(x))
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, tmp_path / "plain.pt")
    assert torch.equal(load_mdbn(tmp_path / "plain.pt", 2)(x), model(x))
    save_weights(tmp_path / "w.safetensors", model.state_dict(), {"arch": "mdbn"})
    assert torch.equal(load_mdbn(tmp_path / "w.safetensors", 2)(x), model(x))


def test_loading_rejects_other_scale_bad_shapes_and_pickles(tmp_path):
    path = tmp_path / "x2.pth"
    torch.save({"params_ema": _tiny(2).state_dict()}, path)
    with pytest.raises(UserError, match=r"scale x2, but scale x4"):
        load_mdbn(path, 4)
    state = _tiny(2).state_dict()
    state["body.1.baseblock2.dconv.weight"] = torch.zeros(8, 8, 1, 1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"body\.1\.baseblock2\.dconv\.weight \(8, 8, 1, 1\) vs \(8, 8, 3, 3\)"):
        load_mdbn(tmp_path / "bad.pth", 2)
    torch.save({"params": _tiny().state_dict(), "obj": UserError("x")}, tmp_path / "pickle.pth")
    with pytest.raises(UserError, match="could run code when loaded"):
        load_mdbn(tmp_path / "pickle.pth", 2)
    with pytest.raises(UserError, match="does not exist"):
        load_mdbn(tmp_path / "missing.pth", 2)


def test_plain_net_loads_as_plain_not_mdbn(tmp_path):
    torch.save(PlainResNet(num_feat=8, num_block=2, upscale=3).state_dict(), tmp_path / "plain.pth")
    assert isinstance(load_sr_model(tmp_path / "plain.pth", 3), PlainResNet)
    with pytest.raises(UserError, match="not MDBN"):
        load_mdbn(tmp_path / "plain.pth", 3)


def test_branch_maps_are_the_two_summands_of_each_base_block():
    model = _tiny()
    x = torch.rand(1, 3, 9, 9)
    maps = branch_maps(model, x)
    assert [m["name"] for m in maps] == ["body.0.baseblock1", "body.0.baseblock2", "body.1.baseblock1", "body.1.baseblock2"]
    # Recompute block body.0.baseblock1 by hand from its input (conv_first output).
    block = model.body[0].baseblock1
    with torch.no_grad():
        feat = model.conv_first(x)
        deep = block.uconv2(torch.nn.functional.gelu(block.uconv1(feat)))
        shallow = block.dconv(feat)
        assert torch.allclose(maps[0]["deep"], deep) and torch.allclose(maps[0]["shallow"], shallow)
        assert torch.allclose(block(feat), torch.nn.functional.gelu(deep + shallow))
    # hooks are removed afterwards: the forward is unchanged and nothing is recorded
    assert all(not m.uconv2._forward_hooks for m in (model.body[0].baseblock1, model.body[1].baseblock2))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_receptive_radius_is_the_measured_one(scale):
    """The structural radius (28 for MDBN) equals the farthest LR pixel that changes the output's centre."""
    model = MDBN(num_feat=4, num_block=6, upscale=scale).double()
    assert receptive_radius(model) == 28
    n = 61
    x = torch.rand(1, 3, n, n, dtype=torch.float64, requires_grad=True)
    c = n // 2
    out = model(x)
    out[0, :, c * scale, c * scale].sum().backward()
    rows = (x.grad.abs().sum(dim=(0, 1, 3)) > 0).nonzero().flatten()
    reach = max(c - rows.min().item(), rows.max().item() - c)
    assert reach == 28
