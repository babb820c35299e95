"""SR data: paired LR/HR test sets, and random-patch training pairs made from an HR folder.

Images are read as 8-bit RGB (:func:`spectralkd.data.open_rgb`): grayscale is replicated to three channels and
the alpha channel of RGBA is dropped (PIL ``convert('RGB')``). Arrays are H×W×3 uint8 numpy.

Paired layouts (``paired_set(root, scale)``):

* ``root/image_SRF_{s}/*_HR.png`` with ``*_LR.png`` (SelfExSR distribution; ``root`` may be that folder itself);
* ``root/HR/`` and ``root/LR/`` (or ``root/LR/X{s}/``) with matching file names (an LR stem may end in ``x{s}``).

An HR image whose size is not ``scale ×`` its LR size but is at most ``scale - 1`` pixels larger (HR not divisible
by the scale) is cropped at the bottom/right with a warning (MATLAB ``modcrop``); any other mismatch is an error.
"""
from __future__ import annotations

import random
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from spectralkd.data import image_files, open_rgb
from spectralkd.data.folders import is_image
from spectralkd.errors import UserError
from spectralkd.sr.bicubic import imresize_uint8
from spectralkd.sr.mdbn import check_scale


def load_rgb(path: str | Path) -> np.ndarray:
    """H×W×3 uint8 (grayscale → RGB, alpha dropped); UserError naming the file when unreadable."""
    return np.array(open_rgb(Path(path)), dtype=np.uint8)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float32 in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float().div_(255.0)


def to_uint8_image(t: torch.Tensor) -> np.ndarray:
    """3×H×W float in [0, 1] → H×W×3 uint8 (clamped, rounded half up as BasicSR's ``tensor2img``)."""
    return (t.detach().float().clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy())


def modcrop(hr: np.ndarray, scale: int, name: str = "image") -> np.ndarray:
    """Crop H and W down to multiples of ``scale`` (bottom/right), warning when pixels are dropped."""
    h, w = hr.shape[:2]
    hh, ww = h - h % scale, w - w % scale
    if (hh, ww) != (h, w):
        warnings.warn(f"{name}: {w}×{h} is not divisible by scale {scale}; cropped to {ww}×{hh}", stacklevel=2)
    if hh == 0 or ww == 0:
        raise UserError(f"{name}: {w}×{h} is smaller than the scale {scale}")
    return hr[:hh, :ww]


def match_sizes(hr: np.ndarray, lr: np.ndarray, scale: int, hr_name: str, lr_name: str) -> np.ndarray:
    """HR cropped to ``scale × LR`` when only the non-divisible remainder differs; else UserError."""
    (h, w), (lh, lw) = hr.shape[:2], lr.shape[:2]
    if (h, w) == (lh * scale, lw * scale):
        return hr
    if 0 <= h - lh * scale < scale and 0 <= w - lw * scale < scale:
        return modcrop(hr, scale, hr_name)
    raise UserError(f"LR {lr_name} is {lw}×{lh} but HR {hr_name} is {w}×{h}; at scale {scale} HR must be "
                    f"{lw * scale}×{lh * scale} (up to {scale - 1} extra pixels are cropped)")


@dataclass
class Pair:
    name: str
    lr_path: Path
    hr_path: Path


def _strip_scale(stem: str, scale: int) -> str:
    return re.sub(rf"[xX]{scale}$", "", stem)


def find_pairs(root: str | Path, scale: int) -> tuple[str, list[Pair]]:
    """(set name, pairs) of a paired test set in either layout; UserError when neither is found."""
    root = Path(root).expanduser()
    scale = check_scale(scale)
    if not root.is_dir():
        raise UserError(f"test set {root} is not a folder")
    name = root.name
    srf = root / f"image_SRF_{scale}"
    if root.name.startswith("image_SRF_"):
        srf, name = root, root.parent.name
        if root.name != f"image_SRF_{scale}":
            raise UserError(f"folder {root} holds another scale than {scale}; use image_SRF_{scale}")
    if srf.is_dir():
        pairs = []
        for hr in sorted(p for p in srf.iterdir() if is_image(p) and p.stem.endswith("_HR")):
            lr = hr.with_name(hr.name.replace("_HR", "_LR"))
            if not lr.is_file():
                raise UserError(f"HR image {hr} has no LR partner {lr.name}")
            pairs.append(Pair(hr.stem[: -len("_HR")], lr, hr))
        if not pairs:
            raise UserError(f"folder {srf} holds no *_HR.png/*_LR.png pairs")
        return name, pairs
    hr_dir, lr_dir = root / "HR", root / "LR"
    if hr_dir.is_dir() and lr_dir.is_dir():
        if (lr_dir / f"X{scale}").is_dir():
            lr_dir = lr_dir / f"X{scale}"
        lrs = {_strip_scale(p.stem, scale): p for p in image_files(lr_dir) if p.parent == lr_dir}
        pairs = []
        for hr in (p for p in image_files(hr_dir) if p.parent == hr_dir):
            if hr.stem not in lrs:
                raise UserError(f"HR image {hr} has no LR image with the same name in {lr_dir}")
            pairs.append(Pair(hr.stem, lrs[hr.stem], hr))
        if not pairs:
            raise UserError(f"folder {hr_dir} holds no images")
        return name, pairs
    avail = sorted(p.name for p in root.iterdir() if p.name.startswith("image_SRF_"))
    hint = f" (found {', '.join(avail)}: scale {scale} missing)" if avail else ""
    raise UserError(f"test set {root} has neither image_SRF_{scale}/ (*_HR/*_LR pairs) nor HR/ + LR/ folders{hint}")


class PairedSet(Dataset):
    """Items ``(name, lr uint8 H×W×3, hr uint8 sH×sW×3)`` of a paired test set."""

    def __init__(self, root: str | Path, scale: int):
        self.scale = check_scale(scale)
        self.name, self.pairs = find_pairs(root, self.scale)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray, np.ndarray]:
        p = self.pairs[i]
        lr, hr = load_rgb(p.lr_path), load_rgb(p.hr_path)
        return p.name, lr, match_sizes(hr, lr, self.scale, str(p.hr_path), str(p.lr_path))


def lr_patch(hr: np.ndarray, top: int, left: int, size: int, scale: int) -> np.ndarray:
    """The LR patch at LR (top, left), LR size ``size``, of MATLAB-bicubic(hr, 1/scale) computed from a window.

    Downscales only the HR window around the patch plus a margin of ``4·scale`` HR pixels (wider than the
    antialiased kernel's reach), clipped to the image, so the result equals the crop of the whole-image LR.
    """
    h, w = hr.shape[:2]
    m = 4 * scale
    y0, x0 = max(0, (top * scale) - m), max(0, (left * scale) - m)
    y1, x1 = min(h, (top + size) * scale + m), min(w, (left + size) * scale + m)
    window = torch.from_numpy(np.ascontiguousarray(hr[y0:y1, x0:x1])).permute(2, 0, 1)
    small = imresize_uint8(window, 1.0 / scale).permute(1, 2, 0).numpy()
    oy, ox = top - y0 // scale, left - x0 // scale
    return small[oy: oy + size, ox: ox + size]


def augment(imgs: list[np.ndarray], rng: random.Random) -> list[np.ndarray]:
    """The same random horizontal flip, vertical flip and transpose (8 dihedral variants) on every image."""
    hflip, vflip, transpose = rng.random() < 0.5, rng.random() < 0.5, rng.random() < 0.5
    out = []
    for img in imgs:
        if hflip:
            img = img[:, ::-1]
        if vflip:
            img = img[::-1]
        if transpose:
            img = img.transpose(1, 0, 2)
        out.append(np.ascontiguousarray(img))
    return out


class HRPatches(Dataset):
    """Random training pairs ``(lr 3×p×p, hr 3×sp×sp)`` float in [0, 1] from a folder of HR images.

    Each item picks image ``i mod n``, a random HR patch of ``patch_size`` pixels (a multiple of the scale,
    aligned to the LR grid), its LR by MATLAB bicubic (:func:`lr_patch`), and a random flip/rotation.
    ``length`` sets the epoch size (BasicSR repeats the image list the same way). HR images are modcropped
    (with a warning) and kept in memory as uint8 when ``in_memory``.
    """

    def __init__(self, root: str | Path, scale: int, patch_size: int, length: int | None = None,
                 augment: bool = True, in_memory: bool = True, seed: int = 0):
        self.scale = check_scale(scale)
        if patch_size % self.scale or patch_size < self.scale:
            raise UserError(f"HR patch size {patch_size} must be a positive multiple of the scale {self.scale}")
        self.files = image_files(Path(root)) if Path(root).is_dir() else []
        if not self.files:
            raise UserError(f"training folder {root} holds no images")
        self.patch, self.length, self.augment, self.in_memory = patch_size, length or len(self.files), augment, in_memory
        self.seed, self.epoch = seed, 0
        self._cache: dict[int, np.ndarray] = {}
        if in_memory:
            for i in range(len(self.files)):
                self._image(i)

    def _image(self, i: int) -> np.ndarray:
        if i in self._cache:
            return self._cache[i]
        hr = load_rgb(self.files[i])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # training images: silently modcrop
            hr = modcrop(hr, self.scale, str(self.files[i]))
        if min(hr.shape[:2]) < self.patch:
            raise UserError(f"training image {self.files[i]} ({hr.shape[1]}×{hr.shape[0]}) is smaller than the "
                            f"HR patch size {self.patch}")
        if self.in_memory:
            self._cache[i] = hr
        return hr

    def set_epoch(self, epoch: int) -> None:
        """Different random patches every epoch, reproducible from (seed, epoch, index)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = random.Random(f"{self.seed}:{self.epoch}:{index}")
        hr_img = self._image(index % len(self.files))
        s, p = self.scale, self.patch // self.scale
        top = rng.randrange(hr_img.shape[0] // s - p + 1)
        left = rng.randrange(hr_img.shape[1] // s - p + 1)
        hr = hr_img[top * s: (top + p) * s, left * s: (left + p) * s]
        lr = lr_patch(hr_img, top, left, p, s)
        if self.augment:
            lr, hr = augment([lr, hr], rng)
        return to_tensor(lr), to_tensor(hr)
