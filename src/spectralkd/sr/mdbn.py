"""MDBN: the Multi-Depth Branches Network for lightweight single-image super-resolution.

Module names follow the published checkpoints (``conv_first``, ``body.{i}.baseblock{1,2}.{uconv1,uconv2,dconv}``,
``conv_after_body``, ``upsample.{j}``, ``conv_last``), so their state dicts load unchanged.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from spectralkd.errors import UserError

SUPPORTED_SCALES = (2, 3, 4, 8)


def check_scale(scale) -> int:
    """The scale as an int, or UserError when the upsampler cannot build it (allowed: 2^n and 3)."""
    try:
        s = int(scale)
    except (TypeError, ValueError):
        raise UserError(f"scale {scale!r} is not an integer; allowed: 2, 3, 4 (any power of two, or 3)") from None
    if s != scale or s < 2 or (s & (s - 1) and s != 3):
        raise UserError(f"scale {scale} is not supported; allowed: 2, 3, 4 (any power of two, or 3)")
    return s


class BaseBlock(nn.Module):
    """Deep branch (3×3 conv → GELU → 3×3 conv) plus shallow branch (one 3×3 conv), summed, then GELU."""

    def __init__(self, num_feat: int):
        super().__init__()
        self.uconv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.uconv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.dconv = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        deep = self.uconv2(self.act(self.uconv1(x)))
        shallow = self.dconv(x)
        return self.act(deep + shallow)


class ResidualBlock(nn.Module):
    """Two base blocks with an identity shortcut: ``x + res_scale * f(x)``."""

    def __init__(self, num_feat: int, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale
        self.baseblock1 = BaseBlock(num_feat)
        self.baseblock2 = BaseBlock(num_feat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.baseblock2(self.baseblock1(x))


class Upsample(nn.Sequential):
    """Sub-pixel upsampler: 2^n → n × [conv to 4C, PixelShuffle(2)]; 3 → [conv to 9C, PixelShuffle(3)]."""

    def __init__(self, scale: int, num_feat: int):
        scale = check_scale(scale)
        layers: list[nn.Module] = []
        if scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            for _ in range(int(math.log2(scale))):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        super().__init__(*layers)


class SRNet(nn.Module):
    """The frame shared by MDBN and the plain control: conv_first → body → conv_after_body (+ global residual from
    conv_first) → sub-pixel upsampler → conv_last. RGB in [0, 1] (no mean shift), LR H×W → HR (scale·H)×(scale·W)."""

    def __init__(self, block: Callable[[], nn.Module], num_block: int, num_in_ch: int, num_out_ch: int,
                 num_feat: int, upscale: int):
        super().__init__()
        self.upscale = check_scale(upscale)
        self.num_feat, self.num_block = int(num_feat), int(num_block)
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[block() for _ in range(num_block)])  # created in module order (seeded init)
        self.conv_after_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.upsample = Upsample(self.upscale, num_feat)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv_first(x)
        res = self.conv_after_body(self.body(feat)) + feat
        return self.conv_last(self.upsample(res))


class MDBN(SRNet):
    """``num_block`` residual blocks of two multi-depth base blocks in the :class:`SRNet` frame."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 6,
                 upscale: int = 2, res_scale: float = 1.0):
        super().__init__(lambda: ResidualBlock(num_feat, res_scale), num_block, num_in_ch, num_out_ch, num_feat,
                         upscale)


def receptive_radius(model: nn.Module) -> int:
    """How many LR pixels on each side an output pixel depends on, from the model's structure.

    Walks the modules in forward order: every k×k convolution (dilation d) at resolution factor f (1 before the
    upsampler, ×r after each PixelShuffle(r)) widens the field by ``d·(k-1)/2 / f`` LR pixels. A residual block's
    branches run in parallel, so only the deepest path counts (``BaseBlock``: uconv1 + uconv2; dconv is shallower).
    The sum is rounded up. Works for :class:`MDBN`, the plain residual network of ``plainnet`` and the inception net of ``inception``.
    """
    total = 0.0
    factor = 1

    def conv_r(conv: nn.Conv2d) -> float:
        k, d = conv.kernel_size[0], conv.dilation[0]
        return d * (k - 1) / 2

    def visit(module: nn.Module) -> None:
        nonlocal total, factor
        if isinstance(module, BaseBlock):
            total += max(conv_r(module.uconv1) + conv_r(module.uconv2), conv_r(module.dconv)) / factor
        elif hasattr(module, "receptive_r"):  # a block with parallel branches reports its deepest path
            total += module.receptive_r() / factor
        elif isinstance(module, nn.Conv2d):
            total += conv_r(module) / factor
        elif isinstance(module, nn.PixelShuffle):
            factor *= module.upscale_factor
        else:
            for child in module.children():
                visit(child)

    visit(model)
    return math.ceil(total - 1e-9)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
