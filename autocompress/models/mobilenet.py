"""The MobileNet-style family: stem -> stages of inverted residual blocks -> head -> classifier."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from autocompress.candidate import Candidate
from autocompress.hw.kernels import ConvBNAct
from autocompress.hw.ops import BitsRule, OpSignature
from autocompress.models import inherit, mobilenet_ops
from autocompress.models.blocks import InvertedResidual
from autocompress.models.family import ArchKnob, LayerSpec, register_family
from autocompress.models.mobilenet_space import MobileNetSpace, StageArch
from autocompress.models.staged import StagedFamily


class MobileNet(nn.Module):
    """stem -> stages of inverted residual blocks -> 1x1 head -> pool -> classifier."""

    def __init__(self, space: MobileNetSpace, arch: Sequence[StageArch]) -> None:
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


@register_family
class MobileNetFamily(StagedFamily):
    """MobileNetV2/V3-style blocks; per stage: depth, kernel size, expand ratio, squeeze-excite.

    Channel pruning applies only where a layer's outputs feed nothing but channel-wise ops
    and one consumer (an expand conv, the head conv); low-rank only to dense layers.
    """

    name = "mobilenet"
    stage_type = StageArch
    space_type = MobileNetSpace
    space: MobileNetSpace

    def arch_knobs(self) -> list[list[ArchKnob]]:
        block = self.space.choices.block
        return [[ArchKnob("depth", "depth", block.depths_for(stage)),
                 ArchKnob("kernel", "kernel_size", list(block.kernel_size)),
                 ArchKnob("expand", "expand_ratio", list(block.expand_ratio)),
                 ArchKnob("se", "squeeze_excite", list(block.squeeze_excite))]
                for stage in self.space.network.stages]

    def build(self, arch: Sequence[StageArch]) -> MobileNet:
        return MobileNet(self.space, arch)

    def compressible_layers(self, arch: Sequence[StageArch]) -> list[LayerSpec]:
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

    def inherited_state(self, subnet: nn.Module, base: nn.Module) -> dict[str, torch.Tensor]:
        return inherit.inherited_state(subnet, base)

    def model_ops(self, model: nn.Module, rule: BitsRule) -> list[OpSignature]:
        return mobilenet_ops.model_signatures(model, self.space.input_shape()[1:], rule)

    def candidate_ops(self, candidate: Candidate, rule: BitsRule) -> list[OpSignature]:
        if self.allows(candidate):
            return mobilenet_ops.candidate_signatures(self.space, candidate, rule)
        return super().candidate_ops(candidate, rule)  # building raises the precise error

    def space_ops(self, rule: BitsRule) -> list[OpSignature]:
        return mobilenet_ops.space_signatures(self.space, rule)
