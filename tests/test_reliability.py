"""Issue 11 (inputs): 16-bit images, decompression bombs, bounded archive extraction, wrong-typed JSON, labels as
text, class-name checks, refused pickles, disk full / out of memory, no absolute paths in files we ship.

Every refusal is one line on stderr, exit status 2, no traceback; nothing is written outside the output or cache
folder and nothing already written is lost."""
import errno
import gzip
import io
import json
import os
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spectralkd.data import ImageFiles, data_identity, open_rgb
from spectralkd.data.archive import extract_once
from spectralkd.errors import UserError
from spectralkd.paths import REPO_ROOT
from spectralkd.runtime.checkpoint import (atomic_torch_save, load_torch_state, load_training_state, load_weights,
                                           save_weights)
from spectralkd.sr.datasets import load_rgb
from spectralkd.sr.mdbn import MDBN

TRAIN = REPO_ROOT / "configs" / "smoke" / "train.yaml"


def one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in Path(root).rglob("*")}


# ---------------------------------------------------------------------------------------------------- images

def _png16_rgb(path: Path, arr: np.ndarray) -> None:
    """A 16-bit-per-channel RGB PNG written by hand (Pillow cannot write one): IHDR bit depth 16, colour type 2."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def images16(tmp_path_factory):
    """8-bit originals and 16-bit copies (value × 257) of them, in every 16-bit form Pillow hands us."""
    root = tmp_path_factory.mktemp("img16")
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)
    rgb[0, :3] = [[0, 0, 0], [255, 255, 255], [1, 128, 254]]  # the extremes and a few exact values
    gray = rgb[..., 1].copy()
    Image.fromarray(rgb).save(root / "rgb8.png")
    Image.fromarray(gray).save(root / "gray8.png")
    g16 = gray.astype(np.uint16) * 257
    Image.frombytes("I;16", (24, 20), g16.astype("<u2").tobytes()).save(root / "gray16.png")
    Image.frombytes("I;16B", (24, 20), g16.astype(">u2").tobytes()).save(root / "gray16b.tif")
    Image.fromarray(g16.astype(np.int32)).save(root / "grayI.tif")  # 32-bit integer TIFF: Pillow mode "I"
    _png16_rgb(root / "rgb16.png", rgb.astype(np.uint16) * 257)
    return root


def test_16bit_forms_are_read_in_the_modes_we_target(images16):
    modes = {name: Image.open(images16 / name).mode for name in ("gray16.png", "gray16b.tif", "grayI.tif")}
    assert modes["gray16.png"].startswith("I;16") and modes["gray16b.tif"] == "I;16B" and modes["grayI.tif"] == "I"
    # Pillow itself clips: this is the defect being fixed (all non-zero values would turn white).
    assert np.asarray(Image.open(images16 / "gray16.png").convert("RGB")).min() == 0
    assert (np.asarray(Image.open(images16 / "gray16.png").convert("L")) == 255).mean() > 0.9


@pytest.mark.parametrize("name,original", [("gray16.png", "gray8.png"), ("gray16b.tif", "gray8.png"),
                                           ("grayI.tif", "gray8.png"), ("rgb16.png", "rgb8.png")])
def test_16bit_copy_gives_the_8bit_result_in_both_loaders(images16, name, original):
    expected = np.asarray(Image.open(images16 / original).convert("RGB"))
    # SR loader
    assert np.array_equal(load_rgb(images16 / name), expected)
    # classifier data path: the dataset item after a transform
    to_t = lambda im: torch.from_numpy(np.array(im))  # noqa: E731
    a, _ = ImageFiles([images16 / name], to_t)[0]
    b, _ = ImageFiles([images16 / original], to_t)[0]
    assert torch.equal(a, b) and torch.equal(a, torch.from_numpy(expected.copy()))


def test_decompression_bomb_is_one_line_and_skippable(tmp_path, monkeypatch, recwarn):
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "bomb.png")
    Image.fromarray(np.full((4, 4, 3), 7, np.uint8)).save(tmp_path / "ok.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 400)  # 1024 px > 2 × 400: Pillow's hard limit
    with pytest.raises(UserError) as info:
        open_rgb(tmp_path / "bomb.png")
    msg = str(info.value)
    assert "bomb.png" in msg and "decompression bomb" in msg and "\n" not in msg
    ds = ImageFiles([tmp_path / "bomb.png", tmp_path / "ok.png"], skip_bad=True)
    assert ds[0] is None and np.asarray(ds[1][0]).max() == 7
    # between the warning threshold and the limit: decoded, with one warning line naming the file
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    assert np.asarray(open_rgb(tmp_path / "bomb.png")).shape == (32, 32, 3)
    texts = [str(w.message) for w in recwarn.list]
    assert any("bomb.png" in t and "\n" not in t for t in texts), texts


def test_unreadable_image_suggests_skip_bad_only_where_the_command_has_it(tmp_path, cli):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(UserError) as info:  # the training/eval datasets (no --skip-bad on train/eval)
        ImageFiles([bad])[0]
    assert "broken.png" in str(info.value) and "--skip-bad" not in str(info.value)
    with pytest.raises(UserError, match="--skip-bad"):  # analyze has the flag
        ImageFiles([bad], bad_hint="use --skip-bad to skip such files")[0]
    weights = REPO_ROOT / "artifacts" / "sr" / "mdbn_x2_cpu.safetensors"
    code, _, err = cli("sr", "upscale", bad, tmp_path / "o.png", "--weights", weights, "--scale", "2")
    line = one_line_error(code, err, "broken.png")
    assert "--skip-bad" not in line
    code, _, err = cli("train", "--help")
    assert "--skip-bad" not in _ + err


# ---------------------------------------------------------------------------------------------------- archives

def _bomb_tar_gz(path: Path, size: int = 2 << 30, chunk: int = 16 << 20) -> None:
    """A valid .tar.gz of ~2 MB holding one member of ``size`` zero bytes, built without writing gigabytes:
    a multi-member gzip whose repeated member is one compressed chunk of zeros (gzip readers concatenate)."""
    info = tarfile.TarInfo("set/train/a/zero.png")
    info.size = size
    zeros = gzip.compress(bytes(chunk), compresslevel=9)
    with open(path, "wb") as out:
        out.write(gzip.compress(info.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(size // chunk):
            out.write(zeros)
        out.write(gzip.compress(bytes(1024)))  # end-of-archive blocks


def test_small_archive_expanding_to_gigabytes_is_refused_before_writing(tmp_path, cli):
    bomb = tmp_path / "bomb.tar.gz"
    _bomb_tar_gz(bomb)
    assert bomb.stat().st_size < 3 << 20
    with gzip.open(bomb) as handle:  # it really is a tar whose first member declares 2 GiB
        assert tarfile.TarInfo.frombuf(handle.read(512), "utf-8", "surrogateescape").size == 2 << 30
    base = tmp_path / "cache"
    with pytest.raises(UserError) as info:
        extract_once(bomb, base)
    msg = str(info.value)
    assert "bomb.tar.gz" in msg and "refusing to extract" in msg and "SPECTRALKD_MAX_EXTRACT_RATIO" in msg
    assert list(base.iterdir()) == []  # no partial output left
    # through the CLI: one line, and no run directory was created
    before = tree(tmp_path)
    code, _, err = cli("train", "--config", TRAIN, "--data", bomb, "--out", tmp_path / "run")
    one_line_error(code, err, "bomb.tar.gz", "refusing to extract")
    assert not (tmp_path / "run").exists() and tree(tmp_path) == before


def _small_tar(path: Path, payload: int = 5000) -> None:
    with tarfile.open(path, "w") as tar:
        for name in ("set/train/a/x.png", "set/val/a/y.png"):
            info = tarfile.TarInfo(name)
            info.size = payload
            tar.addfile(info, io.BytesIO(bytes(payload)))


def test_extraction_limits_are_configurable(tmp_path, monkeypatch):
    archive = tmp_path / "small.tar"
    _small_tar(archive)
    monkeypatch.setenv("SPECTRALKD_MAX_EXTRACT_BYTES", "8K")  # 10000 bytes > 8192
    with pytest.raises(UserError, match=r"SPECTRALKD_MAX_EXTRACT_BYTES=8192"):
        extract_once(archive, tmp_path / "c1")
    assert list((tmp_path / "c1").iterdir()) == []
    monkeypatch.setenv("SPECTRALKD_MAX_EXTRACT_BYTES", "10000")  # exactly the expanded size: allowed
    target = extract_once(archive, tmp_path / "c2")
    assert (target / "set/train/a/x.png").stat().st_size == 5000
    monkeypatch.setenv("SPECTRALKD_MAX_EXTRACT_BYTES", "lots")
    with pytest.raises(UserError, match="SPECTRALKD_MAX_EXTRACT_BYTES='lots' is not valid"):
        extract_once(archive, tmp_path / "c3")
    monkeypatch.delenv("SPECTRALKD_MAX_EXTRACT_BYTES")
    monkeypatch.setenv("SPECTRALKD_MAX_EXTRACT_RATIO", "0")
    with pytest.raises(UserError, match="SPECTRALKD_MAX_EXTRACT_RATIO='0' is not valid"):
        extract_once(archive, tmp_path / "c4")


def test_hard_link_to_a_missing_member_is_one_line(tmp_path, cli):
    archive = tmp_path / "links.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("set/train/a/x.png")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"abcd"))
        link = tarfile.TarInfo("set/train/a/y.png")
        link.type, link.linkname = tarfile.LNKTYPE, "set/train/a/missing.png"
        tar.addfile(link)
    with pytest.raises(UserError, match="hard link 'set/train/a/y.png' to 'set/train/a/missing.png'"):
        extract_once(archive, tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []
    code, _, err = cli("train", "--config", TRAIN, "--data", archive, "--out", tmp_path / "run")
    one_line_error(code, err, "links.tar", "hard link")
    # a hard link to an earlier member is fine
    ok = tmp_path / "goodlinks.tar"
    with tarfile.open(ok, "w") as tar:
        info = tarfile.TarInfo("s/a.png")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"abcd"))
        link = tarfile.TarInfo("s/b.png")
        link.type, link.linkname = tarfile.LNKTYPE, "s/a.png"
        tar.addfile(link)
    assert (extract_once(ok, tmp_path / "cache2") / "s/b.png").read_bytes() == b"abcd"


# ---------------------------------------------------------------------------------------------------- other inputs

def test_model_card_that_is_a_list_or_has_wrong_types(tmp_path, cli, synthetic_root):
    from safetensors.torch import save_file

    w = tmp_path / "w.safetensors"  # weights without an embedded card: the sidecar is the card that is read
    save_file({"x": torch.zeros(2)}, str(w))
    (tmp_path / "w.safetensors.json").write_text("[1, 2]")
    with pytest.raises(UserError, match=r"model card .*w\.safetensors\.json is a JSON list, expected an object"):
        load_weights(w)
    code, _, err = cli("eval", "--checkpoint", w, "--data", synthetic_root)
    one_line_error(code, err, "w.safetensors.json", "JSON list")
    (tmp_path / "w.safetensors.json").write_text(json.dumps({"model": "m", "data": {"classes": "abc"}}))
    with pytest.raises(UserError, match=r"'data.classes' is \"abc\", expected a list of names"):
        load_weights(w)
    (tmp_path / "w.safetensors.json").write_text(json.dumps({"model": 5}))
    with pytest.raises(UserError, match=r"'model' is 5, expected text"):
        load_weights(w)
    # the embedded card is checked the same way
    (tmp_path / "w.safetensors.json").unlink()
    save_weights(tmp_path / "e.safetensors", {"x": torch.zeros(2)}, {"model": "m", "epoch": "three"})
    (tmp_path / "e.safetensors.json").unlink()
    with pytest.raises(UserError, match=r"embedded card.*'epoch' is \"three\", expected integer"):
        load_weights(tmp_path / "e.safetensors")


def _analysis(intensity, model="m"):
    layers = [{"index": i, "shape": [8, 4, 4], "intensity": v, "rms": 1.0, "entropy": 1.0, "high_freq_ratio": 0.1}
              for i, v in enumerate(intensity)]
    return {"model": model, "num_images": 4, "layers": layers,
            "spectra": {str(i): [1.0, 0.5, 0.25, 0.1] for i in range(len(intensity))}}


def test_analysis_json_with_a_string_measure(tmp_path, cli):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(_analysis([0.1, 0.2, 0.3])))
    wrong = _analysis([0.1, 0.2, 0.3])
    wrong["layers"][1]["intensity"] = "high"
    bad.write_text(json.dumps(wrong))
    code, _, err = cli("compare", good, bad, "--out", tmp_path / "cmp")
    one_line_error(code, err, "bad.json", "layers[1].intensity", "expected a number")
    wrong = _analysis([0.1, 0.2])
    wrong["spectra"]["0"] = "flat"
    bad.write_text(json.dumps(wrong))
    code, _, err = cli("compare", good, bad, "--out", tmp_path / "cmp")
    one_line_error(code, err, "spectra[0]", "a list of numbers")
    assert not (tmp_path / "cmp").exists()


def test_last_pt_whose_epoch_is_text(tmp_path):
    path = tmp_path / "last.pt"
    atomic_torch_save({"model": {"w": torch.zeros(1)}, "epoch": "3"}, path)
    with pytest.raises(UserError, match=r"last\.pt: 'epoch' is str '3', expected int"):
        load_training_state(path, {"model": dict, "epoch": int})
    atomic_torch_save({"model": {"w": torch.zeros(1)}, "epoch": True}, path)
    with pytest.raises(UserError, match=r"'epoch' is bool"):
        load_training_state(path, {"model": dict, "epoch": int})
    atomic_torch_save([1, 2], path)
    with pytest.raises(UserError, match="holds a list, not a dict"):
        load_training_state(path, {"epoch": int})
    atomic_torch_save({"model": {"w": torch.zeros(1)}, "epoch": 2}, path)
    assert load_training_state(path, {"model": dict, "epoch": int})["epoch"] == 2


@pytest.mark.parametrize("key,value,needle", [
    ("conv_first.weight", torch.zeros(8), "conv_first.weight has shape (8,)"),
    ("conv_first.weight", torch.zeros(0, 3, 3, 3), "every size ≥ 1"),
    ("upsample.0.weight", torch.zeros(5, 8, 3, 3), "pixel-shuffle upsampler"),
])
def test_sr_weights_with_impossible_shapes(tmp_path, cli, key, value, needle):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
    state = MDBN(num_feat=8, num_block=1, upscale=2).state_dict()
    state[key] = value
    save_weights(tmp_path / "w.safetensors", state)
    code, _, err = cli("sr", "upscale", tmp_path / "in.png", tmp_path / "out.png", "--weights",
                       tmp_path / "w.safetensors", "--scale", "2")
    one_line_error(code, err, "w.safetensors", needle)
    assert not (tmp_path / "out.png").exists()


class _Evil:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_refused_pickle_message_is_our_own_and_not_advice_to_disable(tmp_path, cli, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": _Evil()}, path)
    with pytest.raises(UserError) as info:
        load_torch_state(path)
    msg = str(info.value)
    assert "evil.pt" in msg and "could run code when loaded" in msg and "weights-only" in msg
    assert "weights_only" not in msg and "False" not in msg and "trust" not in msg.lower()
    code, out, err = cli("sr", "upscale", tmp_path / "x.png", tmp_path / "o.png", "--weights", path, "--scale", "2")
    assert code == 2 and "pickled code ran" not in out + err
    (tmp_path / "junk.pt").write_bytes(b"garbage")
    with pytest.raises(UserError) as info:
        load_torch_state(tmp_path / "junk.pt")
    assert "corrupt or not a PyTorch file" in str(info.value) and "weights_only" not in str(info.value)


def test_labels_are_text_not_paths_and_dollar_is_literal(tmp_path, cli, synthetic_root):
    from spectralkd.features import create_model

    kwargs = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=10)
    torch.manual_seed(0)
    run = tmp_path / "work" / "run"
    card = {"model": "deit_tiny_patch16_224", "model_kwargs": kwargs, "top1": 10.0,
            "data": {**data_identity(synthetic_root, None), "input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3,
                     "crop_pct": 1.0}}  # a new-style card: no path, the run's config.yaml says where the data is
    save_weights(run / "best.safetensors", create_model("deit_tiny_patch16_224", model_kwargs=kwargs).state_dict(),
                 card)
    (run / "config.yaml").write_text(f"data:\n  path: {synthetic_root}\n")
    teacher = tmp_path / "work" / "t.json"
    teacher.write_text(json.dumps(_analysis([0.1, 0.3, 0.2, 0.5], "teacher")))
    out = tmp_path / "work" / "cmp"
    before = tree(tmp_path)
    code, stdout, err = cli("compare", teacher, run, "--labels", "$\\undefined{x}$ 5$", "../../x",
                            "--num-images", "4", "--out", out, "--no-progress")
    assert code == 0, err
    new = tree(tmp_path) - before
    assert new and all(p.startswith(str(Path("work") / "cmp")) for p in new), new
    assert (out / "measures.png").stat().st_size > 0 and (out / "spectra.png").stat().st_size > 0
    res = json.loads((out / "compare.json").read_text())
    assert res["teacher"]["label"] == "$\\undefined{x}$ 5$" and res["students"][0]["label"] == "../../x"
    # no absolute path of this machine in any JSON or HTML we wrote
    for f in out.rglob("*"):
        if f.suffix in (".json", ".html"):
            text = f.read_text()
            assert str(tmp_path) not in text and str(synthetic_root) not in text, f
        if f.suffix == ".json":
            assert not [s for s in _strings(json.loads(f.read_text())) if os.path.isabs(s)], f


def _strings(obj):
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return [obj] if isinstance(obj, str) else []


def test_eval_refuses_other_class_names_unless_told(tmp_path, cli, synthetic_root):
    from spectralkd.features import create_model

    kwargs = dict(img_size=32, patch_size=8, depth=1, embed_dim=32, num_heads=2, num_classes=10)
    torch.manual_seed(0)
    model = create_model("deit_tiny_patch16_224", model_kwargs=kwargs)
    classes = sorted(p.name for p in (synthetic_root / "val").iterdir() if p.is_dir())
    other = [f"c{i}" for i in range(10)]
    w = tmp_path / "w.safetensors"
    card = {"model": "deit_tiny_patch16_224", "model_kwargs": kwargs,
            "data": {"classes": other, "input_size": 32, "mean": [0.5] * 3, "std": [0.25] * 3, "crop_pct": 1.0}}
    save_weights(w, model.state_dict(), card)
    args = ("eval", "--checkpoint", w, "--data", synthetic_root, "--num-workers", "0", "--batch-size", "64")
    code, _, err = cli(*args)
    one_line_error(code, err, "w.safetensors", "--ignore-class-names", f"'c0' in the model card but '{classes[0]}'")
    code, out, err = cli(*args, "--ignore-class-names", "--json")
    assert code == 0, err
    assert json.loads(out)["images"] == 50
    save_weights(w, model.state_dict(), {**card, "data": {**card["data"], "classes": classes}})
    code, out, err = cli(*args, "--json")
    assert code == 0, err


# ---------------------------------------------------------------------------------------------------- disk / memory

def _enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_during_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_torch_save({"epoch": 1, "w": torch.arange(4.0)}, path)
    good = path.read_bytes()
    monkeypatch.setattr(os, "fsync", _enospc)  # the disk fills while the new file is being flushed
    with pytest.raises(OSError) as info:
        atomic_torch_save({"epoch": 2, "w": torch.zeros(4)}, path)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    monkeypatch.undo()
    assert path.read_bytes() == good and load_torch_state(path)["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temp file left


def test_disk_full_in_a_command_is_one_line_naming_the_file(tmp_path, cli, monkeypatch):
    d = tmp_path / "set"
    (d / "HR").mkdir(parents=True)
    (d / "LR").mkdir()
    Image.fromarray(np.full((48, 48, 3), 100, np.uint8)).save(d / "HR" / "a.png")
    Image.fromarray(np.full((24, 24, 3), 100, np.uint8)).save(d / "LR" / "a.png")
    (tmp_path / "res.json").write_text("{\"old\": 1}\n")
    monkeypatch.setattr(os, "fsync", _enospc)
    code, _, err = cli("sr", "test", "--model", "bicubic", "--scale", "2", "--data", d, "--out", tmp_path / "res.json")
    one_line_error(code, err, "no space left on device while writing", "res.json")
    assert (tmp_path / "res.json").read_text() == "{\"old\": 1}\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def tiny_sr(tmp_path_factory):
    root = tmp_path_factory.mktemp("tinysr")
    torch.manual_seed(0)
    save_weights(root / "w.safetensors", MDBN(num_feat=8, num_block=1, upscale=2).state_dict())
    Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(root / "in.png")
    return root


@pytest.mark.parametrize("exc", [torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20 GiB"),
                                 RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                                              "can't allocate memory: you tried to allocate 9999999 bytes."),
                                 MemoryError()])
def test_out_of_memory_untiled_upscale_suggests_tile(tmp_path, cli, monkeypatch, tiny_sr, exc):
    import spectralkd.sr.inference as tiling  # upscale_file calls the upscale imported there

    def boom(*_a, **_k):
        raise exc

    monkeypatch.setattr(tiling, "upscale", boom)
    base = ("sr", "upscale", tiny_sr / "in.png", tmp_path / "o.png", "--weights", tiny_sr / "w.safetensors",
            "--scale", "2")
    code, _, err = cli(*base)
    one_line_error(code, err, "out of memory", "in.png", "--tile")
    code, _, err = cli(*base, "--tile", "4")  # already tiled: no --tile advice, still one line
    line = one_line_error(code, err, "out of memory")
    assert "--tile" not in line
    assert not (tmp_path / "o.png").exists()


def test_other_runtime_errors_are_not_disguised_as_out_of_memory(tmp_path, cli, monkeypatch, tiny_sr):
    import spectralkd.sr.inference as tiling  # upscale_file calls the upscale imported there

    def boom(*_a, **_k):
        raise RuntimeError("some genuine bug")

    monkeypatch.setattr(tiling, "upscale", boom)
    with pytest.raises(RuntimeError, match="genuine bug"):
        cli("sr", "upscale", tiny_sr / "in.png", tmp_path / "o.png", "--weights", tiny_sr / "w.safetensors",
            "--scale", "2")


# ---------------------------------------------------------------------------------------------------- portability

def test_data_identity_is_a_name_classes_and_content_hash(tmp_path):
    root = tmp_path / "mydata"
    (root / "train" / "a").mkdir(parents=True)
    (root / "train" / "a" / "x.png").write_bytes(b"12345")
    ident = data_identity(root, ["a"])
    assert ident["name"] == "mydata" and ident["classes"] == ["a"] and str(tmp_path) not in json.dumps(ident)
    import hashlib

    assert ident["hash"] == "sha256:" + hashlib.sha256(b"train/a/x.png\t5\n").hexdigest()
    # same files elsewhere: same hash; a changed size: another hash
    copy = tmp_path / "elsewhere" / "mydata"
    (copy / "train" / "a").mkdir(parents=True)
    (copy / "train" / "a" / "x.png").write_bytes(b"54321")
    assert data_identity(copy, ["a"])["hash"] == ident["hash"]
    (copy / "train" / "a" / "x.png").write_bytes(b"543210")
    assert data_identity(copy, ["a"])["hash"] != ident["hash"]
    archive = tmp_path / "set.tar"
    _small_tar(archive, 10)
    ident = data_identity(archive, None)
    assert ident["name"] == "set.tar" and ident["hash"] == "sha256:" + hashlib.sha256(archive.read_bytes()).hexdigest()


def test_portable_paths():
    from spectralkd.paths import portable

    out = portable({"data": "/home/alice/data/cifar.tar.gz", "n": 3, "run": "/srv/runs/r1/best.safetensors",
                    "command": "spectralkd train --data /home/alice/data/cifar.tar.gz --out=/srv/runs/r1 --set x=1",
                    "text": "a/b c"}, base="/srv/runs")
    assert out == {"data": "data/cifar.tar.gz", "n": 3, "run": "r1/best.safetensors",
                   "command": "spectralkd train --data data/cifar.tar.gz --out=r1 --set x=1", "text": "a/b c"}


def test_analysis_outputs_hold_no_absolute_paths(tmp_path, cli, synthetic_root):
    from spectralkd.features import create_model

    kwargs = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=10)
    torch.manual_seed(0)
    ckpt = tmp_path / "ckpt" / "m.safetensors"
    save_weights(ckpt, create_model("deit_tiny_patch16_224", model_kwargs=kwargs).state_dict())
    out = tmp_path / "an"
    code, _, err = cli("analyze", "--model", "deit_tiny_patch16_224", "--model-kwargs", json.dumps(kwargs),
                       "--checkpoint", ckpt, "--data", synthetic_root, "--num-images", "4", "--out", out,
                       "--no-progress")
    assert code == 0, err
    for name in ("analysis.json", "details.json", "report.html"):
        text = (out / name).read_text()
        assert str(tmp_path) not in text and str(synthetic_root) not in text, name
    settings = json.loads((out / "details.json").read_text())["settings"]
    assert settings["checkpoint"] == "ckpt/m.safetensors"


def test_analyze_skip_bad_skips_a_decompression_bomb(tmp_path, cli, monkeypatch):
    from spectralkd.features import create_model

    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(1)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(data / f"ok{i}.png")
    Image.fromarray(np.zeros((96, 96, 3), np.uint8)).save(data / "huge.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 2000)  # 9216 px > 2 × 2000; 1024 px < 2000
    kwargs = dict(img_size=32, patch_size=8, depth=2, embed_dim=32, num_heads=2, num_classes=10)
    torch.manual_seed(0)
    ckpt = tmp_path / "m.safetensors"
    save_weights(ckpt, create_model("deit_tiny_patch16_224", model_kwargs=kwargs).state_dict())
    args = ["analyze", "--model", "deit_tiny_patch16_224", "--model-kwargs", json.dumps(kwargs), "--checkpoint", ckpt,
            "--data", data, "--no-progress"]
    code, _, err = cli(*args, "--out", tmp_path / "a1")
    one_line_error(code, err, "huge.png", "decompression bomb", "--skip-bad")
    code, out, err = cli(*args, "--out", tmp_path / "a2", "--skip-bad")
    assert code == 0, err
    details = json.loads((tmp_path / "a2" / "details.json").read_text())
    assert details["skipped_images"] == 1 and details["num_images"] == 3


@pytest.mark.parametrize("weights", sorted((REPO_ROOT / "artifacts").rglob("*.safetensors")), ids=lambda p: p.name)
def test_shipped_cards_pass_the_type_check(weights):
    _, card = load_weights(weights)  # SR cards name their config file as text; classifier cards embed a dict
    assert isinstance(card, dict) and card
