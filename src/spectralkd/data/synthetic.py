"""A procedurally generated 10-class image set (32×32 RGB PNG, ImageFolder layout) for demos and tests.

Each class is a family of oriented sinusoidal gratings: class ``k`` has its own orientation (k·18°) and spatial
frequency band, with random phase, contrast, colour tint, a random occluding disc and pixel noise. The set is
learnable (a small ViT gets well above chance in one short epoch) yet not trivial, and needs no download.
It is generated once into the cache; the same seed gives the same files.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from spectralkd.paths import cache_dir

CLASSES = [f"grating{k}" for k in range(10)]


def _image(rng: np.random.Generator, label: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / size
    theta = np.pi * label / len(CLASSES) + rng.normal(0, 0.05)
    freq = 2.0 + 1.2 * (label % 5) + rng.uniform(-0.4, 0.4)
    phase = rng.uniform(0, 2 * np.pi)
    wave = np.sin(2 * np.pi * freq * (xx * np.cos(theta) + yy * np.sin(theta)) + phase)
    contrast = rng.uniform(0.5, 1.0)
    tint = rng.uniform(0.3, 1.0, size=3)
    base = rng.uniform(0.2, 0.6, size=3)
    img = base[None, None, :] + 0.35 * contrast * wave[:, :, None] * tint[None, None, :]
    cy, cx, r = rng.uniform(0, 1, size=2).tolist() + [rng.uniform(0.08, 0.2)]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
    img[disc] = rng.uniform(0, 1, size=3)
    img += rng.normal(0, 0.06, size=img.shape)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def write_synthetic_imagefolder(root: Path, train_per_class: int = 100, val_per_class: int = 20,
                                size: int = 32, seed: int = 0) -> Path:
    """Write ``root/train/<class>/*.png`` and ``root/val/<class>/*.png``."""
    for split, count, offset in (("train", train_per_class, 0), ("val", val_per_class, 1)):
        rng = np.random.default_rng([seed, offset])
        for label, name in enumerate(CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                Image.fromarray(_image(rng, label, size)).save(folder / f"{i:05d}.png")
    return root


def synthetic_imagefolder(train_per_class: int = 100, val_per_class: int = 20, size: int = 32, seed: int = 0) -> Path:
    """The generated set in the cache (created once, atomically), as an ImageFolder root."""
    target = cache_dir() / f"synthetic-{size}px-{train_per_class}-{val_per_class}-s{seed}"
    if target.is_dir():
        return target
    tmp = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=cache_dir()))
    try:
        write_synthetic_imagefolder(tmp, train_per_class, val_per_class, size, seed)
        try:
            os.replace(tmp, target)
        except OSError:
            if not target.is_dir():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
