"""Inference: the tuned forward pass (inference mode, channels-last memory, fp32/bf16/fp16, optional torch.compile)
and upscaling of image files and folders with it."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from PIL import Image
from torch import nn

from spectralkd.data.folders import IMAGE_SUFFIXES, is_image
from spectralkd.errors import UserError, one_line
from spectralkd.runtime.io import atomic_write
from spectralkd.runtime.precision import autocast_ctx, check_precision
from spectralkd.sr.datasets import load_rgb, to_tensor, to_uint8_image
from spectralkd.sr.tiling import upscale

# PIL format names for the suffixes we write (the output file's suffix picks the format).
_FORMATS = {".png": "PNG", ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".ppm": "PPM", ".pgm": "PPM",
            ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP"}
_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}


class InferenceUpscaler:
    """``InferenceUpscaler(model)(lr)``: the model in eval mode with channels-last weights, run under
    ``torch.inference_mode`` with channels-last inputs, at ``precision`` (fp32; bf16 or fp16 autocast, fp16 only
    where :func:`spectralkd.runtime.precision.check_precision` allows it) and optionally compiled.
    Output is float32, contiguous. ``channels_last=False`` with fp32 computes exactly what ``model(lr)`` does."""

    def __init__(self, model: nn.Module, channels_last: bool = True, precision: str = "fp32", compile: bool = False):
        self.model = model.eval()
        self.channels_last = channels_last
        self.device = next(model.parameters()).device
        self.precision = check_precision(self.device, precision)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.fn = self.model
        if compile:
            try:
                self.fn = torch.compile(self.model, dynamic=True)
            except Exception as exc:  # no compiler toolchain etc.
                raise UserError(f"torch.compile is not available here: {one_line(exc, 160)}") from None

    def __call__(self, lr: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode(), autocast_ctx(self.device, self.precision):
            x = lr.to(self.device)
            if self.channels_last and x.ndim == 4:
                x = x.contiguous(memory_format=torch.channels_last)
            out = self.fn(x)
        return out.float().contiguous()


def check_output_image_path(path: str | Path) -> Path:
    """``path`` as an image file to write: not an existing folder, and with a suffix we can write."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"output {path} is a folder; for one input image give an output file such as "
                        f"{path / 'name.png'} (or give an input folder)")
    if path.suffix.lower() not in _FORMATS:
        raise UserError(f"output {path} needs an image extension ({', '.join(_FORMATS)}; .png recommended)")
    return path


def upscale_file(upscaler: InferenceUpscaler, src: str | Path, dst: str | Path, tile: int | None = None,
                 overlap: int | None = None, on_tile: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Super-resolve the image file ``src`` into ``dst`` (format from its suffix, written atomically);
    returns the LR size (width, height). ``on_tile(done, total)`` reports tiled progress."""
    dst = check_output_image_path(dst)
    lr = load_rgb(src)
    sr = upscale(upscaler.model, to_tensor(lr)[None], tile=tile, overlap=overlap, forward=upscaler, on_tile=on_tile)
    img = Image.fromarray(to_uint8_image(sr[0]))
    fmt = _FORMATS[dst.suffix.lower()]
    atomic_write(dst, lambda handle: img.save(handle, format=fmt, **_SAVE_OPTIONS.get(fmt, {})))
    return lr.shape[1], lr.shape[0]


@dataclass
class UpscalePlan:
    """What ``sr upscale INPUT OUTPUT`` will do: ``jobs`` (input, output) pairs and the entries it skips."""
    jobs: list[tuple[Path, Path]]
    skipped: list[Path] = field(default_factory=list)
    folder: bool = False


def plan_upscale(input_path: str | Path, output_path: str | Path) -> UpscalePlan:
    """A file → a file; a folder → a folder with the same file names (images directly in it, sorted; other
    entries, sub-folders included, are listed in ``skipped``). Refuses to overwrite the inputs."""
    src, dst = Path(input_path), Path(output_path)
    if not src.exists():
        raise UserError(f"input {src} does not exist; give an image file or a folder of images")
    if src.is_file():
        check_output_image_path(dst)
        if dst.exists() and dst.resolve() == src.resolve():
            raise UserError(f"output {dst} is the input file; give another name so the original is kept")
        return UpscalePlan([(src, dst)])
    if dst.exists() and not dst.is_dir():
        raise UserError(f"output {dst} is a file, but input {src} is a folder; give an output folder (it is created)")
    if dst.exists() and dst.resolve() == src.resolve():
        raise UserError(f"output folder {dst} is the input folder; give another folder so the originals are kept")
    entries = sorted(src.iterdir())
    images = [p for p in entries if p.is_file() and is_image(p)]
    if not images:
        raise UserError(f"input folder {src} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    skipped = [p for p in entries if p not in images and not p.name.startswith(".")]
    return UpscalePlan([(p, dst / p.name) for p in images], skipped, folder=True)
