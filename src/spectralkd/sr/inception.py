"""A GoogLeNet-like (Inception) SR network in MDBN's frame, at MDBN's parameter count, for the block comparison.

The MDBN paper contrasts its multi-depth block with GoogLeNet-like multi-branch blocks (Szegedy et al., 2015):
parallel branches of different kernel sizes, concatenated. This block follows Inception v1's four branches, with
GELU (MDBN's activation) after every conv:

- 1×1 conv (C → b)
- 1×1 reduce (C → b) → 3×3 conv (b → b)
- 1×1 reduce (C → b) → 5×5 conv (b → b)
- 3×3 max-pool (stride 1) → 1×1 conv (C → b)

the four outputs concatenated (4b channels), fused back to C by a 1×1 conv, plus an identity shortcut. Parameters
per block: 34·b² + 518·b + 64 at C = 64 (with biases). MDBN's body is 36 convs 3×3 64→64 = 1,329,408 parameters;
12 inception blocks of branch width b = 50 hold 12 × 110,964 = 1,331,568, so the whole x2 net has 1,519,731
parameters against MDBN's 1,517,571 (+0.14 %, tested). Stem, global residual, upsampler and tail are MDBN's
(:class:`spectralkd.sr.mdbn.SRNet`).
"""
from __future__ import annotations

import torch
from torch import nn

from spectralkd.sr.mdbn import SRNet


def default_branch_feat(num_feat: int) -> int:
    """Branch width matching MDBN's parameter count with 12 blocks: 50 at num_feat = 64 (scales linearly)."""
    return max(1, round(num_feat * 50 / 64))


class InceptionBlock(nn.Module):
    """``x + res_scale · fuse(concat(b1x1, b3x3, b5x5, bpool))`` (see the module docstring)."""

    def __init__(self, num_feat: int, branch_feat: int, res_scale: float = 1.0):
        super().__init__()
        c, b = num_feat, branch_feat
        self.branch1x1 = nn.Conv2d(c, b, 1)
        self.branch3x3_reduce = nn.Conv2d(c, b, 1)
        self.branch3x3 = nn.Conv2d(b, b, 3, 1, 1)
        self.branch5x5_reduce = nn.Conv2d(c, b, 1)
        self.branch5x5 = nn.Conv2d(b, b, 5, 1, 2)
        self.pool = nn.MaxPool2d(3, 1, 1)
        self.branch_pool = nn.Conv2d(c, b, 1)
        self.fuse = nn.Conv2d(4 * b, c, 1)
        self.act = nn.GELU()
        self.res_scale = res_scale

    def receptive_r(self) -> float:
        """LR pixels each side on the deepest path (reduce → 5×5 → fuse: 2), for ``mdbn.receptive_radius``."""
        return max((self.branch5x5.kernel_size[0] - 1) / 2, (self.branch3x3.kernel_size[0] - 1) / 2, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act
        y = torch.cat([
            a(self.branch1x1(x)),
            a(self.branch3x3(a(self.branch3x3_reduce(x)))),
            a(self.branch5x5(a(self.branch5x5_reduce(x)))),
            a(self.branch_pool(self.pool(x))),
        ], dim=1)
        return x + self.res_scale * self.fuse(y)


class InceptionSRNet(SRNet):
    """``num_block`` inception blocks in MDBN's frame (same stem, global residual, upsampler and tail)."""

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 12,
                 upscale: int = 2, res_scale: float = 1.0, branch_feat: int | None = None):
        b = int(branch_feat) if branch_feat else default_branch_feat(num_feat)
        super().__init__(lambda: InceptionBlock(num_feat, b, res_scale), num_block, num_in_ch, num_out_ch, num_feat,
                         upscale)
        self.branch_feat = b
