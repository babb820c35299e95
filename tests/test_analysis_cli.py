"""`spectralkd analyze` end to end on a tiny ViT, and its bad-input exits (one line, exit 2)."""
import csv
import json

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from conftest import load_benchmark
from spectralkd.analysis.measures import make_loader
from spectralkd.features import block_maps

KWARGS = {"img_size": 32, "patch_size": 4, "depth": 3, "embed_dim": 48, "num_heads": 3}
MODEL = "vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = timm.create_model(MODEL, pretrained=False, **KWARGS)
    path = tmp_path_factory.mktemp("ckpt") / "vit.pth"
    torch.save(model.state_dict(), path)
    return path


def base_args(data, out, checkpoint):
    return ["analyze", "--model", MODEL, "--model-kwargs", json.dumps(KWARGS), "--checkpoint", checkpoint,
            "--data", data, "--out", out, "--no-progress"]


def one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_analyze_end_to_end(cli, synthetic_root, checkpoint, tmp_path):
    out = tmp_path / "out"
    code, stdout, err = cli(*base_args(synthetic_root, out, checkpoint), "--num-images", "12", "--batch-size", "5",
                            "--student-depth", "3", "--num-pairs", "2")
    assert code == 0, err
    for name in ("analysis.json", "details.json", "layers.csv", "report.html", "intensity.png", "entropy.png",
                 "channel_spectra.png", "spatial_spectra.png"):
        assert (out / name).stat().st_size > 0, name
    data = json.loads((out / "analysis.json").read_text())
    assert set(data) == {"model", "num_images", "layers", "spectra", "recommended", "bootstrap"}
    assert data["model"] == MODEL and data["num_images"] == 12
    assert [set(layer) for layer in data["layers"]] == [
        {"index", "shape", "intensity", "entropy", "rms", "svd_rank_99", "high_freq_ratio", "intensity_ci", "rms_ci",
         "entropy_ci", "high_freq_ratio_ci"}] * 3
    assert [layer["shape"] for layer in data["layers"]] == [[48, 8, 8]] * 3
    assert set(data["spectra"]) == {"0", "1", "2"} and all(len(v) == 24 for v in data["spectra"].values())
    assert len(data["recommended"]["student_ids"]) == 2 == len(data["recommended"]["teacher_ids"])
    assert "recommended pairs" in stdout

    # Independent check: the same 12 images through the same model in one batch, numpy reference measures.
    ref = load_benchmark("spectral_reference")
    model = timm.create_model(MODEL, pretrained=False, **KWARGS)
    model.load_state_dict(torch.load(checkpoint, weights_only=True))
    model.eval()
    loader, cfg, n = make_loader(model, synthetic_root, 12, batch_size=12)
    assert cfg["input_size"] == (3, 32, 32) and n == 12
    images = next(iter(loader))[0]
    with torch.no_grad():
        maps = [m.double().numpy() for m in block_maps(model, images)]
    expected = ref.all_measures(maps)
    for got, exp in zip(data["layers"], expected):
        for key in ("intensity", "entropy", "rms", "high_freq_ratio"):
            assert got[key] == pytest.approx(exp[key], rel=1e-4), key
        assert got["svd_rank_99"] == exp["svd_rank_99"]
    np.testing.assert_allclose(data["spectra"]["1"], expected[1]["spectrum"][:24], rtol=1e-4)
    # the recommendation follows the intensities
    scores = [layer["intensity"] for layer in data["layers"]]
    top2 = sorted(np.argsort(scores)[::-1][:2].tolist())
    assert sorted(data["recommended"]["teacher_ids"]) == top2

    rows = list(csv.DictReader((out / "layers.csv").open()))
    assert [int(r["index"]) for r in rows] == [0, 1, 2]
    assert float(rows[2]["entropy"]) == pytest.approx(data["layers"][2]["entropy"], rel=1e-5)
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4 and "Frequency intensity" in html
    details = json.loads((out / "details.json").read_text())
    assert details["teacher_depth"] == 3 and details["skipped_images"] == 0


def test_analyze_named_modules_and_indices(cli, synthetic_root, checkpoint, tmp_path):
    code, _, err = cli(*base_args(synthetic_root, tmp_path / "a", checkpoint), "--num-images", "4",
                       "--layers", "blocks.0.mlp,blocks.2")
    assert code == 0, err
    data = json.loads((tmp_path / "a" / "analysis.json").read_text())
    assert [layer["shape"] for layer in data["layers"]] == [[48, 8, 8]] * 2
    code, _, err = cli(*base_args(synthetic_root, tmp_path / "b", checkpoint), "--num-images", "4", "--indices", "-1")
    assert code == 0, err
    assert [layer["index"] for layer in json.loads((tmp_path / "b" / "analysis.json").read_text())["layers"]] == [2]


def write_images(folder, n=3, bad=None):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(folder / f"img{i}.png")
    if bad:
        (folder / bad).write_bytes(b"\x89PNG\r\n\x1a\n this is not a png")
    return folder


def test_bad_inputs_exit_2_with_one_line(cli, checkpoint, tmp_path):
    good = write_images(tmp_path / "good")
    out = tmp_path / "out"
    code, _, err = cli("analyze", "--model", MODEL, "--model-kwargs", "{depth: 3", "--data", good, "--out", out)
    one_line_error(code, err, "--model-kwargs", "JSON")
    code, _, err = cli("analyze", "--model", "no_such_model_xyz", "--data", good, "--out", out)
    one_line_error(code, err, "unknown model", "no_such_model_xyz")
    (tmp_path / "empty").mkdir()
    code, _, err = cli(*base_args(tmp_path / "empty", out, checkpoint))
    one_line_error(code, err, "no images")
    code, _, err = cli(*base_args(good, out, checkpoint), "--indices", "7")
    one_line_error(code, err, "7", "out of range", "0..2")
    code, _, err = cli(*base_args(good, out, checkpoint), "--layers", "blocks.9")
    one_line_error(code, err, "blocks.9")
    wrong = tmp_path / "wrong.pth"
    torch.save(timm.create_model(MODEL, pretrained=False, **dict(KWARGS, depth=2)).state_dict(), wrong)
    code, _, err = cli(*base_args(good, out, wrong))
    one_line_error(code, err, "wrong.pth", "missing")


def test_corrupt_image_is_named_or_skipped(cli, checkpoint, tmp_path):
    data = write_images(tmp_path / "imgs", n=4, bad="broken.png")
    code, _, err = cli(*base_args(data, tmp_path / "o1", checkpoint))
    one_line_error(code, err, "broken.png", "--skip-bad")
    code, stdout, err = cli(*base_args(data, tmp_path / "o2", checkpoint), "--skip-bad")
    assert code == 0, err
    assert "1 unreadable skipped" in stdout
    assert json.loads((tmp_path / "o2" / "details.json").read_text())["skipped_images"] == 1
    assert json.loads((tmp_path / "o2" / "analysis.json").read_text())["num_images"] == 4


def test_stage_model_pairs_stage_by_stage(cli, tmp_path):
    # ConvNeXt stage outputs change shape (down to 1×1 at 32 px): analysed fine, paired stage by stage
    data = write_images(tmp_path / "imgs", n=2)
    code, _, err = cli("analyze", "--model", "convnext_atto", "--input-size", "32", "--data", data, "--out",
                       tmp_path / "o", "--student-depth", "4", "--no-progress")
    assert code == 0, err
    result = json.loads((tmp_path / "o" / "analysis.json").read_text())
    assert [layer["shape"] for layer in result["layers"]] == [[40, 8, 8], [80, 4, 4], [160, 2, 2], [320, 1, 1]]
    assert result["recommended"]["student_ids"] == [0, 1, 2, 3] == result["recommended"]["teacher_ids"]
    assert result["recommended"]["rule"] == "stages" and result["recommended"]["teacher_shapes"][3] == [320, 1, 1]
    assert result["layers"][3]["high_freq_ratio"] == 0.0  # a 1×1 map has no spatial variation
    assert all(len(result["spectra"][str(i)]) == c // 2 for i, c in enumerate([40, 80, 160, 320]))
