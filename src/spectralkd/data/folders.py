"""Find images: ImageFolder trees (``<split>/<class>/<file>``), flat folders, tarballs of either."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spectralkd.data.archive import extract_once, is_archive
from spectralkd.errors import UserError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def resolve_data(path: str | Path) -> Path:
    """A data folder, or the cached extraction of a ``.tar``/``.tar.gz`` holding one."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UserError(f"data path {path} does not exist; give an image folder or a .tar/.tar.gz of one")
    if path.is_dir():
        return path
    if is_archive(path):
        return extract_once(path)
    raise UserError(f"data path {path} is neither a folder nor a .tar/.tar.gz/.tgz archive")


def _single_child(root: Path) -> Path | None:
    children = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    files = [p for p in root.iterdir() if p.is_file() and is_image(p)]
    return children[0] if len(children) == 1 and not files else None


def split_dir(root: Path, split: str) -> Path | None:
    """``root/<split>`` or ``root/<only child>/<split>`` (an archive's top folder), else None.

    ``val`` also matches ``validation`` and ``test``.
    """
    names = {"val": ("val", "validation", "test"), "train": ("train", "training")}.get(split, (split,))
    node: Path | None = Path(root)
    for _ in range(3):
        if node is None:
            return None
        for name in names:
            if (node / name).is_dir():
                return node / name
        node = _single_child(node)
    return None


def image_files(root: Path) -> list[Path]:
    """Every image below ``root`` (recursive), sorted."""
    root = Path(root)
    if root.is_file():
        return [root] if is_image(root) else []
    return sorted(p for p in root.rglob("*") if p.is_file() and is_image(p))


def class_folders(root: Path) -> tuple[list[tuple[Path, int]], list[str]]:
    """ImageFolder layout: one sub-folder per class (sorted names → label ids); returns (items, class names)."""
    root = Path(root)
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    items: list[tuple[Path, int]] = []
    for label, name in enumerate(classes):
        items.extend((f, label) for f in image_files(root / name))
    if not classes:
        raise UserError(f"{root} has no class sub-folders; an ImageFolder needs <root>/<class>/<image>")
    if not items:
        raise UserError(f"{root} has class folders but no images ({', '.join(IMAGE_SUFFIXES)})")
    return items, classes


def labelled_split(data: str | Path, split: str) -> tuple[list[tuple[Path, int]], list[str], Path]:
    """Labelled items of ``split`` in an ImageFolder dataset (folder or archive) → (items, classes, split folder)."""
    root = resolve_data(data)
    folder = split_dir(root, split)
    if folder is None:
        raise UserError(f"data {data} has no '{split}' folder; expected <root>/{split}/<class>/<image>")
    items, classes = class_folders(folder)
    return items, classes, folder


def analysis_images(data: str | Path, split: str = "val") -> list[Path]:
    """Images to analyse: the ``split`` folder when the dataset has one, else every image below the root."""
    root = resolve_data(data)
    folder = split_dir(root, split) or root
    files = image_files(folder)
    if not files:
        raise UserError(f"no images found in {folder} (looked for {', '.join(IMAGE_SUFFIXES)})")
    return files


def holdout_split(items: list[tuple[Path, int]], count: int, seed: int = 0) -> tuple[list, list]:
    """(rest, held out): ``count`` items held out for validation, class-balanced (every class gives
    ``count // classes`` items, the first ``count % classes`` classes one more), chosen by a permutation seeded with
    ``seed`` per class, so the split depends only on the file list, ``count`` and ``seed``. Both lists keep the
    input order."""
    by_class: dict[int, list[int]] = {}
    for i, (_, label) in enumerate(items):
        by_class.setdefault(label, []).append(i)
    labels = sorted(by_class)
    if not 0 < count < len(items):
        raise UserError(f"data.holdout={count} must be between 1 and {len(items) - 1} (the training split has "
                        f"{len(items)} images)")
    base, extra = divmod(count, len(labels))
    held: set[int] = set()
    for k, label in enumerate(labels):
        want = base + (1 if k < extra else 0)
        members = by_class[label]
        if want > len(members) - 1:
            raise UserError(f"data.holdout={count} asks {want} images of class {label}, which has {len(members)} "
                            "(at least one must stay for training)")
        order = np.random.default_rng([int(seed), int(label)]).permutation(len(members))
        held.update(members[j] for j in order[:want])
    return [it for i, it in enumerate(items) if i not in held], [it for i, it in enumerate(items) if i in held]
