"""Datasets over image files whose errors name the file (or skip bad files and count them)."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, default_collate

from spectralkd.errors import UserError, one_line


def open_rgb(path: Path) -> Image.Image:
    """Open an image file as RGB, raising :class:`UserError` naming the file when it cannot be decoded."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot read image {path}: {one_line(exc, 160)} (use --skip-bad to skip such files)") from None


class ImageFiles(Dataset):
    """``(image, label)`` pairs from a list of files; labels default to -1 (unlabelled analysis sets).

    With ``skip_bad=True`` an unreadable file yields ``None``; use :func:`collate_skip_bad`, which drops those
    and reports how many it dropped.
    """

    def __init__(self, files: Sequence[Path] | Sequence[tuple[Path, int]], transform: Callable | None = None,
                 skip_bad: bool = False):
        self.items = [(Path(f[0]), int(f[1])) if isinstance(f, tuple) else (Path(f), -1) for f in files]
        self.transform = transform
        self.skip_bad = skip_bad

    def __len__(self) -> int:
        return len(self.items)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.items]

    def __getitem__(self, index: int):
        path, label = self.items[index]
        try:
            img = open_rgb(path)
        except UserError:
            if self.skip_bad:
                return None
            raise
        if self.transform is not None:
            img = self.transform(img)
        return img, label


def collate_skip_bad(batch: list) -> tuple[torch.Tensor | None, torch.Tensor | None, int]:
    """Collate, dropping ``None`` items → ``(images, labels, n_dropped)``; images is None if all were bad."""
    good = [item for item in batch if item is not None]
    dropped = len(batch) - len(good)
    if not good:
        return None, None, dropped
    images, labels = default_collate(good)
    return images, labels, dropped
