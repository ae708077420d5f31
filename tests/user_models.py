"""Users' own networks for the torch-model family's tests (plain torch, nothing of ours)."""

from __future__ import annotations

import torch
from torch import nn


class TinyResidual(nn.Module):
    """conv-bn-relu stem, one residual block, global pool, linear: the stem and the block's
    second conv meet at the add."""

    def __init__(self, act: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.act = act if act is not None else nn.ReLU()
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(self.bn2(self.conv2(self.act(self.bn1(self.conv1(x))))) + x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def tiny_residual() -> nn.Module:
    return TinyResidual()


def with_gelu() -> nn.Module:
    """The same network with a GELU: a fixed op of the latency table."""
    return TinyResidual(nn.GELU())


def clamp_to_unit(x: torch.Tensor) -> torch.Tensor:
    """A function torch.fx keeps as one call (``fx.wrap``) that lives only in this file,
    which the family imports under a name of its own: nothing can find it to time it."""
    return x.clamp(0.0, 1.0)


torch.fx.wrap("clamp_to_unit")


class _Clamped(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return clamp_to_unit(x)


def with_local_function() -> nn.Module:
    """The same network with an activation that is a function of this file."""
    return TinyResidual(_Clamped())
