import io
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from spectralkd.data import (ImageFiles, analysis_images, collate_skip_bad, labelled_split, resolve_data, split_dir,
                             synthetic_imagefolder)
from spectralkd.data.synthetic import write_synthetic_imagefolder
from spectralkd.errors import UserError


def _png_bytes(color=(10, 20, 30)):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def _tar_with(path: Path, members: dict[str, bytes]):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_tarball_imagefolder_extracted_once(tmp_path):
    archive = _tar_with(tmp_path / "set.tar.gz", {
        "set/train/a/0.png": _png_bytes(), "set/train/b/0.png": _png_bytes(), "set/val/a/0.png": _png_bytes(),
        "set/val/b/1.png": _png_bytes((200, 0, 0)),
    })
    root = resolve_data(archive)
    marker = root / "marker"
    marker.write_text("x")
    assert resolve_data(archive) == root and marker.exists()  # second call reuses the extraction
    items, classes, folder = labelled_split(archive, "val")
    assert classes == ["a", "b"] and [label for _, label in items] == [0, 1]
    assert folder == split_dir(root, "val")


@pytest.mark.parametrize("bad", ["/etc/evil.png", "set/../../evil.png"])
def test_tarball_refuses_escaping_members(tmp_path, bad):
    archive = _tar_with(tmp_path / "bad.tar", {"set/train/a/0.png": _png_bytes(), bad: b"x"})
    with pytest.raises(UserError, match="unsafe member"):
        resolve_data(archive)
    assert not (tmp_path / "evil.png").exists()


def test_missing_and_empty_data(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        resolve_data(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no images found"):
        analysis_images(tmp_path / "empty")
    with pytest.raises(UserError, match="no 'train' folder"):
        labelled_split(tmp_path / "empty", "train")


def test_corrupt_image_is_named_or_skipped(tmp_path):
    good = tmp_path / "good.png"
    good.write_bytes(_png_bytes())
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image at all")
    ds = ImageFiles([good, bad], transform=lambda im: torch.from_numpy(np.asarray(im).copy()))
    with pytest.raises(UserError, match="broken.jpg"):
        ds[1]
    ds = ImageFiles([good, bad, good], transform=lambda im: torch.from_numpy(np.asarray(im).copy()), skip_bad=True)
    images, labels, dropped = collate_skip_bad([ds[i] for i in range(3)])
    assert dropped == 1 and images.shape == (2, 8, 8, 3) and labels.tolist() == [-1, -1]


def test_synthetic_set_is_deterministic_and_balanced(tmp_path):
    a = write_synthetic_imagefolder(tmp_path / "a", train_per_class=3, val_per_class=2, seed=1)
    b = write_synthetic_imagefolder(tmp_path / "b", train_per_class=3, val_per_class=2, seed=1)
    fa = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    assert fa == sorted(p.relative_to(b) for p in b.rglob("*.png")) and len(fa) == 10 * 5
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in fa)
    items, classes, _ = labelled_split(a, "train")
    assert len(classes) == 10 and np.bincount([label for _, label in items]).tolist() == [3] * 10
    # classes differ in orientation: the mean images of two classes are not the same picture
    img0 = np.asarray(Image.open(a / "train/grating0/00000.png"), dtype=float)
    assert img0.shape == (32, 32, 3) and img0.std() > 5


def test_shared_cifar_and_imagenet_sample(shared_data):
    files = analysis_images(shared_data / "imagenet-sample")
    assert len(files) == 63
    items, classes, _ = labelled_split(shared_data / "cifar10-jpg.tar.gz", "val")
    assert len(classes) == 10 and len(items) == 10000


def test_default_synthetic_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("SPECTRALKD_CACHE", str(tmp_path))
    root = synthetic_imagefolder(train_per_class=2, val_per_class=1)
    assert root.parent == tmp_path and synthetic_imagefolder(train_per_class=2, val_per_class=1) == root


def test_holdout_split_is_class_balanced_disjoint_and_seeded():
    from pathlib import Path

    from spectralkd.data import holdout_split
    from spectralkd.errors import UserError

    items = [(Path(f"{c}/{i}.png"), c) for c in range(3) for i in range(10)]
    rest, held = holdout_split(items, 7, seed=1)
    assert len(held) == 7 and len(rest) == 23 and not set(held) & set(rest)
    assert sorted(c for _, c in held) == [0, 0, 0, 1, 1, 2, 2]  # 7 = 3 classes × 2 + 1 extra for class 0
    assert holdout_split(items, 7, seed=1) == (rest, held)
    assert holdout_split(items, 7, seed=2)[1] != held
    assert [it for it in items if it in set(rest)] == rest  # input order kept
    with pytest.raises(UserError, match="data.holdout=30 must be between 1 and 29"):
        holdout_split(items, 30)
    with pytest.raises(UserError, match="asks 10 images of class 0, which has 10"):
        holdout_split(items, 28)
