"""Datasets over image files whose errors name the file (or skip bad files and count them)."""
from __future__ import annotations

from pathlib import Path
import warnings
from typing import Callable, Sequence

import numpy as np

import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset, default_collate

from spectralkd.errors import UserError, one_line


def _to_rgb(img: Image.Image) -> Image.Image:
    """RGB with 8 bits per channel; 16/32-bit integer images are scaled by their value range, not clipped.

    Pillow's own ``convert`` clips ``I;16``/``I`` values above 255 to white; here 0..65535 maps to 0..255
    (``v / 257``, rounded), so a 16-bit copy of an 8-bit image (``v * 257``) decodes to the same pixels.
    16-bit RGB PNGs arrive from Pillow already reduced to 8 bits per channel.
    """
    if img.mode.startswith("I;16") or img.mode == "I":
        values = np.asarray(img, dtype=np.float64)
        gray = np.clip(np.rint(values / 257.0), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    return img.convert("RGB")


def open_rgb(path: Path) -> Image.Image:
    """Open an image file as RGB, raising :class:`UserError` naming the file when it cannot be decoded.

    An image over Pillow's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``) is refused the same way;
    one over the warning threshold (half that) is decoded with a one-line warning naming the file.
    """
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()
                rgb = _to_rgb(img)
        for w in caught:
            if issubclass(w.category, Image.DecompressionBombWarning):
                warnings.warn(f"image {path}: {' '.join(str(w.message).split())}", UserWarning, stacklevel=2)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return rgb
    except Image.DecompressionBombError as exc:
        raise UserError(f"image {path} is refused: {' '.join(str(exc).split())}") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise UserError(f"cannot read image {path}: {one_line(exc, 160)}") from None


class ImageFiles(Dataset):
    """``(image, label)`` pairs from a list of files; labels default to -1 (unlabelled analysis sets).

    With ``skip_bad=True`` an unreadable file yields ``None``; use :func:`collate_skip_bad`, which drops those
    and reports how many it dropped. ``bad_hint`` is appended to the error for an unreadable file when not
    skipping (e.g. ``"use --skip-bad to skip such files"`` from a command that has that flag).
    """

    def __init__(self, files: Sequence[Path] | Sequence[tuple[Path, int]], transform: Callable | None = None,
                 skip_bad: bool = False, bad_hint: str = ""):
        self.items = [(Path(f[0]), int(f[1])) if isinstance(f, tuple) else (Path(f), -1) for f in files]
        self.transform = transform
        self.skip_bad = skip_bad
        self.bad_hint = bad_hint

    def __len__(self) -> int:
        return len(self.items)

    @property
    def targets(self) -> list[int]:
        return [label for _, label in self.items]

    def __getitem__(self, index: int):
        path, label = self.items[index]
        try:
            img = open_rgb(path)
        except UserError as exc:
            if self.skip_bad:
                return None
            if self.bad_hint:
                raise UserError(f"{exc} ({self.bad_hint})") from None
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
