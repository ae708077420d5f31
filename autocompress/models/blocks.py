"""Building blocks of the MobileNetV2/V3-style networks (timm-like small layers)."""

from __future__ import annotations

import torch
from torch import nn


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> optional ReLU: the unit a runtime fuses into one kernel."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=False) if act else nn.Identity()


def squeeze_channels(hidden: int) -> int:
    """Width of the squeeze-excite bottleneck for a block with ``hidden`` channels."""
    return max(8, hidden // 4)


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation gate on the expanded channels (MobileNetV3).

    It is channel-wise on its input, so channel pruning of the layer that feeds it can
    slice it through ``prune_channels``.
    """

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * scale

    @torch.no_grad()
    def prune_channels(self, keep: torch.Tensor) -> None:
        """Keep only the input/output channels indexed by ``keep``."""
        reduce = nn.Conv2d(len(keep), self.reduce.out_channels, 1)
        reduce.weight.copy_(self.reduce.weight[:, keep])
        reduce.bias.copy_(self.reduce.bias)
        expand = nn.Conv2d(self.expand.in_channels, len(keep), 1)
        expand.weight.copy_(self.expand.weight[keep])
        expand.bias.copy_(self.expand.bias[keep])
        self.reduce, self.expand = reduce, expand


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
