import pickle

import pytest
import torch
from safetensors.torch import save_file

from spectralkd.runtime.checkpoint import atomic_torch_save, load_torch_state, load_weights, save_weights
from spectralkd.errors import UserError
from spectralkd.features import (MapsAndLogits, block_maps, create_model, load_state_dict_file, module_maps,
                                 num_block_maps, tokens_to_map)

VIT = dict(img_size=32, patch_size=4, depth=3, embed_dim=48, num_heads=3, num_classes=10)


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    return create_model("vit_tiny_patch16_224", model_kwargs=VIT).eval()


def test_vit_block_maps_are_patch_tokens_of_each_block(vit):
    x = torch.randn(2, 3, 32, 32)
    captured = []
    handles = [b.register_forward_hook(lambda m, i, o: captured.append(o)) for b in vit.blocks]
    with torch.no_grad():
        vit(x)
        maps = block_maps(vit, x)
    for h in handles:
        h.remove()
    assert len(maps) == 3 and all(m.shape == (2, 48, 8, 8) for m in maps)
    for tokens, m in zip(captured, maps):
        # token 0 is the class token; patch token p = row*8 + col sits at m[:, :, row, col]
        assert torch.equal(tokens[:, 1 + 8 * 3 + 5], m[:, :, 3, 5])


def test_negative_indices_and_range_error(vit):
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        last, first = block_maps(vit, x, [-1, 0])
        all_maps = block_maps(vit, x)
    assert torch.equal(last, all_maps[2]) and torch.equal(first, all_maps[0])
    with pytest.raises(UserError, match=r"index 3 is out of range; valid: 0\.\.2"):
        block_maps(vit, x, [3])


def test_hooks_by_module_name_match_block_maps(vit):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(module_maps(vit, x, ["blocks.1"]), block_maps(vit, x, [1])))
    with pytest.raises(UserError, match="module 'blocks.9' is not in"):
        module_maps(vit, x, ["blocks.9"])


def test_maps_and_logits_one_forward(vit):
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        logits, maps = MapsAndLogits(vit, [0, -1])(x)
        assert torch.allclose(logits, vit(x), atol=1e-6) and len(maps) == 2


def test_cait_self_attention_blocks_and_swin_stages_nchw():
    cait = create_model("cait_xxs24_224", model_kwargs=dict(img_size=32, patch_size=4, depth=4, embed_dim=48,
                                                          num_heads=3, depth_token_only=1, num_classes=10)).eval()
    assert num_block_maps(cait) == 4
    swin = create_model("swin_tiny_patch4_window7_224", model_kwargs=dict(
        img_size=32, window_size=2, embed_dim=24, depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1), num_classes=10)).eval()
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        assert [m.shape[1:] for m in block_maps(cait, x)] == [(48, 8, 8)] * 4
        stages = block_maps(swin, x)
        # stage 0 of swin is NHWC internally; the NCHW map at (h, w) must equal the NHWC hook output at (h, w)
        nhwc = module_maps(swin, x, ["layers.0"], nhwc=True)[0]
    assert [tuple(m.shape[1:]) for m in stages] == [(24, 8, 8), (48, 4, 4), (96, 2, 2), (192, 1, 1)]
    assert torch.equal(nhwc, stages[0])


def test_tokens_to_map_drops_prefix():
    t = torch.arange(2 * 18 * 3, dtype=torch.float32).reshape(2, 18, 3)  # 2 prefix tokens + 4×4 patches
    m = tokens_to_map(t, num_prefix_tokens=2)
    assert m.shape == (2, 3, 4, 4) and torch.equal(m[:, :, 0, 1], t[:, 3])
    with pytest.raises(UserError, match="not a square"):
        tokens_to_map(torch.zeros(1, 7, 3), num_prefix_tokens=0)


def test_local_checkpoints_safetensors_and_pth(vit, tmp_path):
    state = vit.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "w.safetensors"))
    atomic_torch_save({"model": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        model = create_model("vit_tiny_patch16_224", model_kwargs=VIT, checkpoint=tmp_path / name)
        assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
    partial = {k: v for k, v in state.items() if not k.startswith("head")}
    save_file({k: v.contiguous() for k, v in partial.items()}, str(tmp_path / "p.safetensors"))
    with pytest.raises(UserError, match="missing key"):
        create_model("vit_tiny_patch16_224", model_kwargs=VIT, checkpoint=tmp_path / "p.safetensors")
    with pytest.raises(UserError, match="shape mismatch"):
        create_model("vit_tiny_patch16_224", model_kwargs={**VIT, "num_classes": 5}, checkpoint=tmp_path / "w.pth")


class _Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_loading_never_runs_pickled_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pth", "wb") as fh:
        torch.save({"model": _Boom()}, fh, pickle_module=pickle)
    with pytest.raises(UserError, match="could run code when loaded"):
        load_state_dict_file(tmp_path / "evil.pth")
    assert not (tmp_path / "PWNED").exists()
    (tmp_path / "trunc.safetensors").write_bytes(b"\x10\x00\x00")
    with pytest.raises(UserError, match="not a readable safetensors"):
        load_weights(tmp_path / "trunc.safetensors")


def test_weights_with_card_and_atomic_replace(tmp_path, monkeypatch):
    path = tmp_path / "best.safetensors"
    save_weights(path, {"w": torch.ones(2)}, {"top1": 51.5, "seed": 0})
    state, card = load_weights(path)
    assert torch.equal(state["w"], torch.ones(2)) and card == {"top1": 51.5, "seed": 0}
    (tmp_path / "best.safetensors.json").unlink()
    assert load_weights(path)[1] == {"top1": 51.5, "seed": 0}  # the card also lives in the file's metadata
    # a write that fails half-way leaves the previous file intact and no temp file behind
    atomic_torch_save({"epoch": 1}, tmp_path / "last.pt")

    def explode(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", explode)
    with pytest.raises(RuntimeError):
        atomic_torch_save({"epoch": 2}, tmp_path / "last.pt")
    assert load_torch_state(tmp_path / "last.pt") == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.safetensors", "last.pt"]


def test_unknown_model_and_bad_kwargs():
    with pytest.raises(UserError, match="unknown model 'vit_tinyy'"):
        create_model("vit_tinyy")
    with pytest.raises(UserError, match="not valid JSON"):
        create_model("vit_tiny_patch16_224", model_kwargs="{depth: 2")
    with pytest.raises(UserError, match="JSON object"):
        create_model("vit_tiny_patch16_224", model_kwargs="[1, 2]")


def test_atomic_files_get_the_usual_mode(tmp_path):
    import os

    from spectralkd.runtime.io import atomic_write_text

    atomic_write_text(tmp_path / "a.txt", "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~mask
