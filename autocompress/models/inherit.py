"""Weight inheritance of the MobileNet family from its trained base network (once-for-all style).

A smaller subnet takes: the first k blocks of each stage, the centre crop of each
depthwise kernel, and for a smaller expand ratio the base block's most important hidden
channels (largest L1 norm of the expand filters), in the same order everywhere they
appear (expand, depthwise, squeeze-excite, project).

``inherited_state`` builds the subnet's tensors by indexing the base's, so it is
differentiable: the base's supernet training (``base.train_supernet``) runs subnets
through it and trains the very weights they will later inherit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from autocompress.compress.prune import filter_importance
from autocompress.hw.kernels import SqueezeExcite
from autocompress.models.blocks import InvertedResidual
from autocompress.models.slicing import bn_state, top_indices, whole_state

if TYPE_CHECKING:
    from autocompress.models.mobilenet import MobileNet


def _centre_crop(weight: torch.Tensor, size: int) -> torch.Tensor:
    start = (weight.shape[-1] - size) // 2
    return weight[..., start : start + size, start : start + size]


def _block_state(prefix: str, target: InvertedResidual, source: InvertedResidual) -> dict[str, torch.Tensor]:
    index = top_indices(filter_importance(source.expand.conv), target.expand.conv.out_channels)
    state = {
        f"{prefix}.expand.conv.weight": source.expand.conv.weight[index],
        **bn_state(f"{prefix}.expand.bn", source.expand.bn, index),
        f"{prefix}.dw.conv.weight": _centre_crop(source.dw.conv.weight[index], target.dw.conv.kernel_size[0]),
        **bn_state(f"{prefix}.dw.bn", source.dw.bn, index),
        f"{prefix}.project.conv.weight": source.project.conv.weight[:, index],
        **whole_state(f"{prefix}.project.bn", source.project.bn),
    }
    if isinstance(target.se, SqueezeExcite) and isinstance(source.se, SqueezeExcite):
        squeeze = top_indices(filter_importance(source.se.reduce), target.se.reduce.out_channels)
        state |= {
            f"{prefix}.se.reduce.weight": source.se.reduce.weight[squeeze][:, index],
            f"{prefix}.se.reduce.bias": source.se.reduce.bias[squeeze],
            f"{prefix}.se.expand.weight": source.se.expand.weight[index][:, squeeze],
            f"{prefix}.se.expand.bias": source.se.expand.bias[index],
        }
    return state


def inherited_state(subnet: MobileNet, base: MobileNet) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``subnet`` (any architecture of the base's space, on
    any device, ``meta`` included), taken from ``base``'s tensors by indexing."""
    state = whole_state("stem", base.stem) | whole_state("head", base.head) | whole_state("classifier", base.classifier)
    for s, (sub_stage, base_stage) in enumerate(zip(subnet.stages, base.stages, strict=True)):
        for b, (sub_block, base_block) in enumerate(zip(sub_stage, base_stage, strict=False)):
            state |= _block_state(f"stages.{s}.{b}", sub_block, base_block)
    return state
