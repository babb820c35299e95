"""A plain residual SR network with MDBN's parameter count, for the structural comparison.

Same stem, global residual, upsampler and tail as MDBN. MDBN's body has 6 residual blocks × 2 base blocks × 3
convs (uconv1, uconv2, dconv) = 36 convs of 64→64 channels, a third of them on a shallow side branch. This net
has ``num_block=12`` blocks of 3 convs in sequence (conv → GELU → conv → GELU → conv, plus identity): the same 36
convs, hence exactly the same parameter count (tested), but every conv on one deep path and no shallow branches.
"""
from __future__ import annotations

import torch
from torch import nn

from spectralkd.sr.mdbn import SRNet


class PlainBlock(nn.Module):
    """``x + res_scale · conv3(GELU(conv2(GELU(conv1(x)))))``."""

    def __init__(self, num_feat: int, res_scale: float = 1.0):
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.act = nn.GELU()
        self.res_scale = res_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.res_scale * self.conv3(self.act(self.conv2(self.act(self.conv1(x)))))


class PlainResNet(SRNet):
    """``num_block`` plain blocks in MDBN's frame (same stem, global residual, upsampler and tail)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 12,
                 upscale: int = 2, res_scale: float = 1.0):
        super().__init__(lambda: PlainBlock(num_feat, res_scale), num_block, num_in_ch, num_out_ch, num_feat,
                         upscale)
