"""Score an upscaler on paired sets: per-image PSNR/SSIM (Y, border cropped), then the set mean."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

from spectralkd.sr.bicubic import imresize_uint8
from spectralkd.sr.datasets import PairedSet, to_tensor, to_uint8_image
from spectralkd.sr.metrics import psnr, ssim
from spectralkd.sr.tiling import upscale

Upscaler = Callable[[np.ndarray], np.ndarray]  # LR uint8 H×W×3 → SR uint8 sH×sW×3


def bicubic_upscaler(scale: int) -> Upscaler:
    def upscale_bicubic(lr: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(lr)).permute(2, 0, 1).contiguous()
        return imresize_uint8(t, scale).permute(1, 2, 0).numpy()

    return upscale_bicubic


def model_upscaler(model: nn.Module, tile: int | None = None, forward=None) -> Upscaler:
    """Runs ``model`` (or the tuned ``forward``) in inference mode; SR rounded to uint8 like BasicSR."""
    device = next(model.parameters()).device

    def upscale_with_model(lr: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = upscale(model, to_tensor(lr)[None].to(device), tile=tile, forward=forward)
        return to_uint8_image(out[0])

    return upscale_with_model


def evaluate_set(upscaler: Upscaler, dataset: PairedSet, crop_border: int, max_images: int | None = None,
                 save_dir: str | Path | None = None) -> dict:
    """``{"psnr", "ssim", "images": [{"name", "psnr", "ssim"}, ...]}`` (means over images)."""
    images = []
    for i in range(len(dataset) if max_images is None else min(max_images, len(dataset))):
        name, lr, hr = dataset[i]
        sr = upscaler(lr)
        if save_dir is not None:
            out = Path(save_dir) / dataset.name
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(sr).save(out / f"{name}.png")
        images.append({"name": name, "psnr": psnr(sr, hr, crop_border), "ssim": ssim(sr, hr, crop_border)})
    return {"psnr": float(np.mean([r["psnr"] for r in images])), "ssim": float(np.mean([r["ssim"] for r in images])),
            "images": images}
