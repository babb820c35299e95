"""`spectralkd sr ...`: results JSON, tiled upscale equals untiled, bad input → one line on stderr, exit 2."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from spectralkd.sr.bicubic import imresize_uint8
from spectralkd.sr.mdbn import MDBN


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("srcli")
    rng = np.random.default_rng(0)
    d = root / "Tiny" / "image_SRF_2"
    d.mkdir(parents=True)
    for i in range(2):
        hr = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
        Image.fromarray(hr).save(d / f"t{i}_HR.png")
        lr = imresize_uint8(torch.from_numpy(hr).permute(2, 0, 1).contiguous(), 0.5).permute(1, 2, 0).numpy()
        Image.fromarray(lr).save(d / f"t{i}_LR.png")
    torch.manual_seed(0)
    torch.save({"params_ema": MDBN(num_feat=8, num_block=1, upscale=2).state_dict()}, root / "tiny_x2.pth")
    return root


def _one_line_error(capsys, code, pattern):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err
    assert pattern in err, err


def test_test_command_json_and_table(sk, files, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert sk(["sr", "test", "--model", "bicubic", "--scale", "2", "--data", str(files / "Tiny"), "--out", str(out),
               "--crop-border", "4", "--save-images", str(tmp_path / "img")]) == 0
    res = json.loads(out.read_text())
    assert set(res) == {"Tiny"} and len(res["Tiny"]["images"]) == 2
    assert res["Tiny"]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in res["Tiny"]["images"]]))
    assert "border 4" in capsys.readouterr().out
    saved = np.array(Image.open(tmp_path / "img" / "Tiny" / "t0.png"))
    assert saved.shape == (24, 20, 3)
    assert sk(["sr", "test", "--weights", str(files / "tiny_x2.pth"), "--scale", "2", "--data", str(files / "Tiny"),
               "--out", str(out)]) == 0
    assert 0 < json.loads(out.read_text())["Tiny"]["ssim"] <= 1


def test_upscale_tiled_equals_untiled(sk, files, tmp_path):
    lr = files / "Tiny" / "image_SRF_2" / "t0_LR.png"
    assert sk(["sr", "upscale", str(lr), str(tmp_path / "a.png"), "--weights", str(files / "tiny_x2.pth"), "--scale", "2"]) == 0
    assert sk(["sr", "upscale", str(lr), str(tmp_path / "b.png"), "--weights", str(files / "tiny_x2.pth"), "--scale", "2",
               "--tile", "4"]) == 0
    a, b = np.array(Image.open(tmp_path / "a.png")), np.array(Image.open(tmp_path / "b.png"))
    assert a.shape == (24, 20, 3) and np.array_equal(a, b)


def test_analyze_writes_json_and_plot(sk, files, tmp_path):
    lr = files / "Tiny" / "image_SRF_2" / "t0_LR.png"
    assert sk(["sr", "analyze", "--weights", str(files / "tiny_x2.pth"), "--image", str(lr), "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "branches.json").read_text())
    assert len(res["blocks"]) == 2 and (tmp_path / "branches.png").stat().st_size > 1000
    b = res["blocks"][0]["deep"]
    assert 0 <= b["high_share"] <= 1 and b["low_high_ratio"] == pytest.approx((1 - b["high_share"]) / b["high_share"])


@pytest.mark.parametrize("argv,pattern", [
    (["sr", "test", "--model", "bicubic", "--scale", "5", "--data", "X"], "scale 5 is not supported"),
    (["sr", "test", "--scale", "2", "--data", "{tiny}"], "--weights is required"),
    (["sr", "test", "--weights", "{root}/missing.pth", "--scale", "2", "--data", "{tiny}"], "does not exist"),
    (["sr", "test", "--weights", "{root}/tiny_x2.pth", "--scale", "4", "--data", "{tiny}"], "scale 4 missing"),
    (["sr", "test", "--weights", "{root}/tiny_x2.pth", "--scale", "3", "--data", "{root}"], "neither image_SRF_3"),
    (["sr", "upscale", "{lr}", "{root}/o.png", "--weights", "{root}/tiny_x2.pth", "--scale", "3"],
     "are for scale x2, but scale x3 was requested"),
    (["sr", "upscale", "{root}/nothere.png", "{root}/o.png", "--weights", "{root}/tiny_x2.pth", "--scale", "2"], "nothere.png"),
    (["sr", "upscale", "{lr}", "{root}/o.txt", "--weights", "{root}/tiny_x2.pth", "--scale", "2"], "image extension"),
    (["sr", "train", "--set", "model.width=3"], "unknown config key 'model.width'"),
    (["sr", "train", "--set", "model.arch=resnet", "--set", "out={root}/r"], "config key 'model.arch': 'resnet' is not allowed; expected one of mdbn, plain"),
])
def test_bad_input_is_one_line_exit_2(sk, files, capsys, argv, pattern):
    fill = {"root": str(files), "tiny": str(files / "Tiny"), "lr": str(files / "Tiny" / "image_SRF_2" / "t0_LR.png")}
    _one_line_error(capsys, sk([a.format(**fill) for a in argv]), pattern)


def test_argparse_rejects_negative_tile(sk, capsys):
    with pytest.raises(SystemExit) as exc:
        sk(["sr", "upscale", "a.png", "b.png", "--weights", "w", "--scale", "2", "--tile", "-3"])
    assert exc.value.code == 2
