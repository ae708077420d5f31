"""The MobileNet family's inverted residual block, built of the kernel units of ``hw.kernels``."""

from __future__ import annotations

import torch
from torch import nn

from autocompress.hw.kernels import ConvBNAct, SqueezeExcite


def squeeze_channels(hidden: int) -> int:
    """Width of the squeeze-excite bottleneck for a block with ``hidden`` channels."""
    return max(8, hidden // 4)


class InvertedResidual(nn.Module):
    """MobileNetV2 block: 1x1 expand -> kxk depthwise -> [SE] -> 1x1 project (+ skip)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand_ratio: int,
        kernel_size: int,
        squeeze_excite: bool,
    ) -> None:
        super().__init__()
        hidden = in_channels * expand_ratio
        self.expand = ConvBNAct(in_channels, hidden, 1)
        self.dw = ConvBNAct(hidden, hidden, kernel_size, stride, groups=hidden)
        self.se = SqueezeExcite(hidden, squeeze_channels(hidden)) if squeeze_excite else nn.Identity()
        self.project = ConvBNAct(hidden, out_channels, 1, act=False)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.se(self.dw(self.expand(x))))
        return x + out if self.use_residual else out
