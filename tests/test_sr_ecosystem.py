"""SR as people use it: folder upscaling, --precision, ONNX export checked with onnxruntime, one-line bad input."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

from spectralkd.errors import UserError
from spectralkd.paths import REPO_ROOT
from spectralkd.sr.datasets import load_rgb, to_tensor, to_uint8_image
from spectralkd.sr.evaluate import evaluate_set, model_upscaler
from spectralkd.sr.datasets import PairedSet
from spectralkd.sr.inference import InferenceUpscaler
from spectralkd.sr.loading import load_sr_model
from spectralkd.sr.mdbn import MDBN
from spectralkd.sr.metrics import psnr
from spectralkd.sr.tiling import upscale

SHIPPED = REPO_ROOT / "artifacts" / "sr" / "mdbn_x2_cpu.safetensors"
BF16_MIN_PSNR = 40.0  # dB, bf16 output against fp32 output (issue 14)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """A tiny x2 MDBN and a folder of three images (two formats, two sizes), a text file and a sub-folder."""
    root = tmp_path_factory.mktemp("sreco")
    torch.manual_seed(0)
    torch.save({"params_ema": MDBN(num_feat=8, num_block=1, upscale=2).state_dict()}, root / "tiny_x2.pth")
    rng = np.random.default_rng(0)
    imgs = root / "in"
    (imgs / "sub").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(imgs / "a.png")
    Image.fromarray(rng.integers(0, 256, (9, 14, 3), dtype=np.uint8)).save(imgs / "b.bmp")
    Image.fromarray(rng.integers(0, 256, (11, 11), dtype=np.uint8)).save(imgs / "c_gray.png")
    Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(imgs / "sub" / "deep.png")
    (imgs / "notes.txt").write_text("not an image")
    return root


def _one_line_error(capsys, code, pattern):
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert pattern in err, err


def test_folder_upscale_one_output_per_input_equal_to_single_files(sk, root, tmp_path, capsys):
    w = str(root / "tiny_x2.pth")
    assert sk(["sr", "upscale", str(root / "in"), str(tmp_path / "out"), "--weights", w, "--scale", "2"]) == 0
    err = capsys.readouterr().err
    assert "skipping 2 entries" in err and "notes.txt" in err and "sub/" in err and "3 images upscaled" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "b.bmp", "c_gray.png"]
    for name in ("a.png", "b.bmp", "c_gray.png"):
        single = tmp_path / f"single_{name}"
        assert sk(["sr", "upscale", str(root / "in" / name), str(single), "--weights", w, "--scale", "2"]) == 0
        folder_img, single_img = np.array(Image.open(tmp_path / "out" / name)), np.array(Image.open(single))
        lr = load_rgb(root / "in" / name)
        assert folder_img.shape == (2 * lr.shape[0], 2 * lr.shape[1], 3)
        assert np.array_equal(folder_img, single_img)
    # independent expectation: the plain model's forward pass, rounded like BasicSR
    model = load_sr_model(root / "tiny_x2.pth", 2)
    with torch.no_grad():
        ref = to_uint8_image(model(to_tensor(load_rgb(root / "in" / "a.png"))[None])[0])
    got = np.array(Image.open(tmp_path / "out" / "a.png")).astype(int)
    assert np.abs(got - ref.astype(int)).max() <= 1 and (got == ref).mean() > 0.99


def test_folder_with_an_unreadable_image_writes_the_others_then_one_line(sk, root, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.open(root / "in" / "a.png").save(src / "good.png")
    (src / "broken.png").write_bytes(b"not a png")
    code = sk(["sr", "upscale", str(src), str(tmp_path / "out"), "--weights", str(root / "tiny_x2.pth"), "--scale", "2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "1 of 2 images" in err[-1] and "broken.png" in err[-1] and "Traceback" not in "".join(err)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["good.png"]


def test_tile_progress_callback_counts_tiles():
    model = MDBN(num_feat=8, num_block=1, upscale=2).eval()
    calls = []
    with torch.no_grad():
        upscale(model, torch.rand(1, 3, 33, 31), tile=16, on_tile=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 6) for i in range(1, 7)]  # ceil(33/16) × ceil(31/16) = 3 × 2 tiles


W = ["--weights", "{root}/tiny_x2.pth", "--scale", "2"]


@pytest.mark.parametrize("argv,pattern", [
    (["sr", "upscale", "{in}", "{in}/a.png", *W], "is a file, but input"),
    (["sr", "upscale", "{in}/a.png", "{root}", *W], "is a folder; for one input image"),
    (["sr", "upscale", "{in}", "{in}", *W], "is the input folder"),
    (["sr", "upscale", "{in}/a.png", "{in}/a.png", *W], "is the input file"),
    (["sr", "upscale", "{in}", "{root}/o", *W, "--precision", "fp16"], "needs a CUDA device"),
    (["sr", "upscale", "{root}/nothere", "{root}/o", *W], "does not exist"),
    (["sr", "upscale", "{root}/empty", "{root}/o", *W], "holds no images"),
    (["sr", "test", "--data", "{root}", *W, "--precision", "fp16"], "needs a CUDA device"),
    (["sr", "test", "--model", "bicubic", "--scale", "2", "--data", "{root}", "--precision", "bf16"], "not used with"),
    (["sr", "export", "--out", "{root}", "--format", "onnx", *W], "is a folder"),
    (["sr", "export", "--out", "{root}/m.txt", *W], "should end in .onnx"),
])
def test_bad_input_is_one_line_exit_2(sk, root, capsys, argv, pattern):
    (root / "empty").mkdir(exist_ok=True)
    fill = {"root": str(root), "in": str(root / "in")}
    _one_line_error(capsys, sk([a.format(**fill) for a in argv]), pattern)


def test_bf16_matches_fp32_on_the_shipped_model(shared_data):
    """bf16 output ≥ 40 dB PSNR against fp32 (uint8 RGB, the written image) on a crop of Set5 'baby' LR."""
    lr = load_rgb(shared_data / "sr" / "Set5" / "image_SRF_2" / "img_001_SRF_2_LR.png")[40:88, 50:98]
    model = load_sr_model(SHIPPED, 2)
    x = to_tensor(lr)[None]
    fp32 = InferenceUpscaler(model)(x)[0]
    bf16 = InferenceUpscaler(model, precision="bf16")(x)[0]
    assert (bf16 - fp32).abs().max() > 1e-4  # bf16 really ran (fp32 paths agree within ~1e-6)
    assert psnr(to_uint8_image(bf16), to_uint8_image(fp32), 0, y_channel=False) >= BF16_MIN_PSNR


def test_sr_test_fp32_equals_the_plain_model_and_bf16_is_close(sk, root, tmp_path, capsys):
    data = tmp_path / "Tiny" / "image_SRF_2"
    data.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(2):
        hr = rng.integers(0, 256, (32, 28, 3), dtype=np.uint8)
        Image.fromarray(hr).save(data / f"t{i}_HR.png")
        Image.fromarray(np.array(Image.fromarray(hr).resize((14, 16), Image.BICUBIC))).save(data / f"t{i}_LR.png")
    weights = root / "tiny_x2.pth"
    res = {}
    for prec in ("fp32", "bf16"):
        out = tmp_path / f"{prec}.json"
        assert sk(["sr", "test", "--weights", str(weights), "--scale", "2", "--data", str(data.parent),
                   "--out", str(out), "--precision", prec]) == 0
        res[prec] = json.loads(out.read_text())["Tiny"]
    assert "mdbn, bf16" in capsys.readouterr().out
    plain = evaluate_set(model_upscaler(load_sr_model(weights, 2)), PairedSet(data.parent, 2), 2)
    assert res["fp32"]["psnr"] == plain["psnr"] and res["fp32"]["ssim"] == plain["ssim"]
    assert res["bf16"]["psnr"] != res["fp32"]["psnr"] and abs(res["bf16"]["psnr"] - res["fp32"]["psnr"]) < 0.05


def test_onnx_export_matches_onnxruntime_at_two_sizes(sk, root, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    out = tmp_path / "tiny.onnx"
    assert sk(["sr", "export", "--weights", str(root / "tiny_x2.pth"), "--scale", "2", "--format", "onnx",
               "--out", str(out)]) == 0
    assert "max |Δ|" in capsys.readouterr().out
    graph = onnx.load(str(out)).graph
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in (graph.input[0], graph.output[0])]
    assert dims[0][1] == 3 and all(isinstance(d, str) for d in (dims[0][0], dims[0][2], dims[0][3]))
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    model = load_sr_model(root / "tiny_x2.pth", 2)
    for shape in ((1, 3, 16, 16), (2, 3, 37, 23)):
        x = torch.rand(*shape, generator=torch.Generator().manual_seed(sum(shape)))
        with torch.no_grad():
            ref = model(x).numpy()
        (got,) = session.run(None, {graph.input[0].name: x.numpy()})
        assert got.shape == (shape[0], 3, 2 * shape[2], 2 * shape[3])
        assert np.abs(got - ref).max() <= 1e-4


class DataDependent(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x):
        return self.conv(x) if x.mean() > 0.5 else x  # a branch on values: torch.export cannot trace it


def test_a_model_that_cannot_be_exported_is_one_line(tmp_path, capfd):
    pytest.importorskip("onnxscript")
    from spectralkd.sr.export import export_onnx

    with pytest.raises(UserError) as exc:
        export_onnx(DataDependent(), tmp_path / "bad.onnx")
    msg = str(exc.value)
    assert "DataDependent cannot be exported to ONNX" in msg and "\n" not in msg
    assert not (tmp_path / "bad.onnx").exists()
    assert capfd.readouterr().err == ""  # torch.export's graph dumps are kept off the terminal
