"""The MobileNet-style network of a search space, for any architecture choice."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from autocompress.candidate import StageArch
from autocompress.models.blocks import ConvBNAct, InvertedResidual
from autocompress.space import SearchSpace


class MobileNet(nn.Module):
    """stem -> stages of inverted residual blocks -> 1x1 head -> pool -> classifier."""

    def __init__(self, space: SearchSpace, arch: list[StageArch]) -> None:
        super().__init__()
        net = space.network
        if len(arch) != len(net.stages):
            raise ValueError(f"architecture has {len(arch)} stages, the space {len(net.stages)}")
        self.stem = ConvBNAct(space.data.channels, net.stem_channels, 3, 1)
        in_channels = net.stem_channels
        stages = []
        for stage, choice in zip(net.stages, arch, strict=True):
            blocks = []
            for index in range(choice.depth):
                blocks.append(
                    InvertedResidual(
                        in_channels,
                        stage.channels,
                        stage.stride if index == 0 else 1,
                        choice.expand_ratio,
                        choice.kernel_size,
                        choice.squeeze_excite,
                    )
                )
                in_channels = stage.channels
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.head = ConvBNAct(in_channels, net.head_channels, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(net.head_channels, space.data.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.stages(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))


def input_shape(space: SearchSpace, batch_size: int = 1) -> tuple[int, int, int, int]:
    size = space.data.image_size
    return (batch_size, space.data.channels, size, size)


@dataclass(frozen=True)
class LayerSpec:
    """A layer a policy can compress, and which knobs apply to it.

    Channel pruning applies only where a layer's outputs feed nothing but channel-wise
    ops and one consumer (an expand conv, the head conv); low-rank only to dense
    (non-depthwise) layers.
    """

    name: str
    role: str
    channel_prunable: bool
    factorisable: bool


def compressible_layers(space: SearchSpace, arch: list[StageArch]) -> list[LayerSpec]:
    """Every layer of the network for ``arch`` that carries a per-layer policy."""
    layers = [LayerSpec("stem.conv", "stem", False, False)]
    for s, choice in enumerate(arch):
        for b in range(choice.depth):
            prefix = f"stages.{s}.{b}"
            layers += [
                LayerSpec(f"{prefix}.expand.conv", "expand", True, True),
                LayerSpec(f"{prefix}.dw.conv", "depthwise", False, False),
            ]
            if choice.squeeze_excite:
                layers += [
                    LayerSpec(f"{prefix}.se.reduce", "se", False, False),
                    LayerSpec(f"{prefix}.se.expand", "se", False, False),
                ]
            layers.append(LayerSpec(f"{prefix}.project.conv", "project", False, True))
    layers += [
        LayerSpec("head.conv", "head", True, True),
        LayerSpec("classifier", "classifier", False, True),
    ]
    return layers


def _arch_picking(space: SearchSpace, pick: Callable[[list], Any]) -> list[StageArch]:
    """The architecture whose every choice is ``pick(choices)``."""
    block = space.choices.block
    return [
        StageArch(
            depth=pick(space.stage_depths(i)),
            kernel_size=pick(block.kernel_size),
            expand_ratio=pick(block.expand_ratio),
            squeeze_excite=pick(block.squeeze_excite),
        )
        for i in range(len(space.network.stages))
    ]


def largest_arch(space: SearchSpace) -> list[StageArch]:
    """The base network: every stage at its deepest, widest, largest-kernel setting, SE on."""
    return _arch_picking(space, max)


def smallest_arch(space: SearchSpace) -> list[StageArch]:
    return _arch_picking(space, min)


def random_arch(space: SearchSpace, rng: random.Random) -> list[StageArch]:
    return _arch_picking(space, rng.choice)
