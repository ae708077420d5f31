"""The ResNet-style family: stem -> stages of basic blocks -> pool -> classifier.

Per stage: depth (the first k blocks) and width (a fraction of the stage's channels).
Block 0 of every stage has a 1x1 projection shortcut, so any width fits any input; the
other blocks add their input as it is. The channels of a stage meet at those adds, so a
stage is one channel group (``compress.coupling``): its width and its pruning take the
same channels from every block's second conv and the shortcut. Ops come from the traced
graph (``graph_ops``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from autocompress.compress.prune import filter_importance
from autocompress.hw.kernels import ConvBNAct
from autocompress.models.family import ArchKnob, LayerSpec, register_family
from autocompress.models.slicing import bn_state, top_indices, whole_state
from autocompress.models.staged import DepthChoices, StagedFamily, StageSettings
from autocompress.space import Choices, NetworkSettings, SearchSpace, distinct_within


class ResNetNetwork(NetworkSettings):
    family: Literal["resnet"]
    stem_channels: int = Field(16, ge=4, le=256)
    stages: list[StageSettings] = Field(min_length=1, max_length=8)


class ResNetBlockChoices(DepthChoices):
    width: list[float] = Field(min_length=1, description="fractions of each stage's channels")

    @field_validator("width")
    @classmethod
    def _width_range(cls, value: list[float]) -> list[float]:
        return distinct_within(value, 0.25, 1.0, "width values")


class ResNetChoices(Choices):
    block: ResNetBlockChoices


class ResNetSpace(SearchSpace):
    network: ResNetNetwork
    choices: ResNetChoices


@dataclass(frozen=True)
class ResNetStage:
    depth: int
    width: float

    def label(self) -> str:
        return f"d{self.depth} w{self.width:g}"


def stage_width(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class BasicBlock(nn.Module):
    """3x3 conv -> 3x3 conv, plus the input (projected by a 1x1 conv in a stage's first block)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, project: bool) -> None:
        super().__init__()
        self.conv1 = ConvBNAct(in_channels, out_channels, 3, stride)
        self.conv2 = ConvBNAct(out_channels, out_channels, 3, act=False)
        self.shortcut = ConvBNAct(in_channels, out_channels, 1, stride, act=False) if project else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv2(self.conv1(x)) + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, space: ResNetSpace, arch: Sequence[ResNetStage]) -> None:
        super().__init__()
        net = space.network
        if len(arch) != len(net.stages):
            raise ValueError(f"architecture has {len(arch)} stages, the space {len(net.stages)}")
        self.stem = ConvBNAct(space.data.channels, net.stem_channels, 3, 1)
        in_channels, stages = net.stem_channels, []
        for stage, choice in zip(net.stages, arch, strict=True):
            width = stage_width(stage.channels, choice.width)
            blocks = [BasicBlock(in_channels if b == 0 else width, width, stage.stride if b == 0 else 1, b == 0)
                      for b in range(choice.depth)]
            stages.append(nn.Sequential(*blocks))
            in_channels = width
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(in_channels, space.data.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.stages(self.stem(x))), 1))


def _block_state(prefix: str, target: BasicBlock, source: BasicBlock, inputs: torch.Tensor,
                 outputs: torch.Tensor) -> dict[str, torch.Tensor]:
    """A block's tensors: its inner channels the most important of the source's first conv,
    its input and output channels ``inputs`` and ``outputs`` of the stage's."""
    inner = top_indices(filter_importance(source.conv1.conv), target.conv1.conv.out_channels)
    state = {f"{prefix}.conv1.conv.weight": source.conv1.conv.weight[inner][:, inputs],
             **bn_state(f"{prefix}.conv1.bn", source.conv1.bn, inner),
             f"{prefix}.conv2.conv.weight": source.conv2.conv.weight[outputs][:, inner],
             **bn_state(f"{prefix}.conv2.bn", source.conv2.bn, outputs)}
    if isinstance(target.shortcut, ConvBNAct):
        state |= {f"{prefix}.shortcut.conv.weight": source.shortcut.conv.weight[outputs][:, inputs],
                  **bn_state(f"{prefix}.shortcut.bn", source.shortcut.bn, outputs)}
    return state


@register_family
class ResNetFamily(StagedFamily):
    """Basic blocks; per stage: depth and width. Every conv can be pruned (a stage's channels
    as one coupled group) and factorised; the classifier's outputs are the logits."""

    name = "resnet"
    stage_type = ResNetStage
    space_type = ResNetSpace
    space: ResNetSpace

    def arch_knobs(self) -> list[list[ArchKnob]]:
        block = self.space.choices.block
        return [[ArchKnob("depth", "depth", block.depths_for(stage)), ArchKnob("width", "width", list(block.width))]
                for stage in self.space.network.stages]

    def build(self, arch: Sequence[ResNetStage]) -> ResNet:
        return ResNet(self.space, arch)

    def compressible_layers(self, arch: Sequence[ResNetStage]) -> list[LayerSpec]:
        layers = [LayerSpec("stem.conv", "stem", True, True)]
        for s, choice in enumerate(arch):
            for b in range(choice.depth):
                prefix = f"stages.{s}.{b}"
                layers += [LayerSpec(f"{prefix}.conv1.conv", "conv1", True, True),
                           LayerSpec(f"{prefix}.conv2.conv", "conv2", True, True)]
                if b == 0:
                    layers.append(LayerSpec(f"{prefix}.shortcut.conv", "shortcut", True, True))
        return [*layers, LayerSpec("classifier", "classifier", False, True)]

    def inherited_state(self, subnet: nn.Module, base: nn.Module) -> dict[str, torch.Tensor]:
        """The stem whole; each stage's first k blocks, its channels the most important of
        the base stage's (L1 summed over every conv that produces them, as coupled pruning
        ranks them); the classifier's inputs those of the last stage."""
        state = whole_state("stem", base.stem)
        inputs = torch.arange(base.stem.conv.out_channels, device=base.stem.conv.weight.device)
        for s, (sub_stage, base_stage) in enumerate(zip(subnet.stages, base.stages, strict=True)):
            producers = [block.conv2.conv for block in base_stage] + [base_stage[0].shortcut.conv]
            outputs = top_indices(sum(filter_importance(conv) for conv in producers),
                                  sub_stage[0].conv2.conv.out_channels)
            for b, (target, source) in enumerate(zip(sub_stage, base_stage, strict=False)):
                state |= _block_state(f"stages.{s}.{b}", target, source, inputs, outputs)
                inputs = outputs
        return state | {"classifier.weight": base.classifier.weight[:, inputs],
                        "classifier.bias": base.classifier.bias}

    def op_archs(self) -> list[list[ResNetStage]]:
        """Every combination of stage widths at full depth: a shallower stage runs a prefix of
        the same blocks, but a width changes the shapes of the next stage too."""
        block = self.space.choices.block
        depths = [max(block.depths_for(stage)) for stage in self.space.network.stages]
        widths = block.width
        return [[ResNetStage(d, w) for d, w in zip(depths, combo, strict=True)]
                for combo in itertools.product(widths, repeat=len(depths))]
