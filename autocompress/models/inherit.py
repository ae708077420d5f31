"""Weight inheritance from the trained base network (once-for-all style).

A smaller subnet takes: the first k blocks of each stage, the centre crop of each
depthwise kernel, and for a smaller expand ratio the base block's most important hidden
channels (largest L1 norm of the expand filters), in the same order everywhere they
appear (expand, depthwise, squeeze-excite, project).
"""

from __future__ import annotations

import torch
from torch import nn

from autocompress.compress.prune import filter_importance
from autocompress.models.blocks import InvertedResidual, SqueezeExcite
from autocompress.models.mobilenet import MobileNet


def _top(scores: torch.Tensor, count: int) -> torch.Tensor:
    return torch.sort(torch.topk(scores, count).indices).values


def _centre_crop(weight: torch.Tensor, size: int) -> torch.Tensor:
    start = (weight.shape[-1] - size) // 2
    return weight[..., start : start + size, start : start + size]


@torch.no_grad()
def _copy_bn(target: nn.BatchNorm2d, source: nn.BatchNorm2d, index: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(target, name).copy_(getattr(source, name)[index])
    target.num_batches_tracked.copy_(source.num_batches_tracked)


@torch.no_grad()
def _inherit_block(target: InvertedResidual, source: InvertedResidual) -> None:
    hidden = target.expand.conv.out_channels
    index = _top(filter_importance(source.expand.conv), hidden)
    target.expand.conv.weight.copy_(source.expand.conv.weight[index])
    _copy_bn(target.expand.bn, source.expand.bn, index)
    kernel = target.dw.conv.kernel_size[0]
    target.dw.conv.weight.copy_(_centre_crop(source.dw.conv.weight[index], kernel))
    _copy_bn(target.dw.bn, source.dw.bn, index)
    if isinstance(target.se, SqueezeExcite) and isinstance(source.se, SqueezeExcite):
        squeeze = _top(filter_importance(source.se.reduce), target.se.reduce.out_channels)
        target.se.reduce.weight.copy_(source.se.reduce.weight[squeeze][:, index])
        target.se.reduce.bias.copy_(source.se.reduce.bias[squeeze])
        target.se.expand.weight.copy_(source.se.expand.weight[index][:, squeeze])
        target.se.expand.bias.copy_(source.se.expand.bias[index])
    target.project.conv.weight.copy_(source.project.conv.weight[:, index])
    target.project.bn.load_state_dict(source.project.bn.state_dict())


@torch.no_grad()
def inherit_weights(subnet: MobileNet, base: MobileNet) -> MobileNet:
    """Fill ``subnet`` (any architecture of the base's space) from ``base``; returns it."""
    subnet.stem.load_state_dict(base.stem.state_dict())
    for sub_stage, base_stage in zip(subnet.stages, base.stages, strict=True):
        for sub_block, base_block in zip(sub_stage, base_stage, strict=False):
            _inherit_block(sub_block, base_block)
    subnet.head.load_state_dict(base.head.state_dict())
    subnet.classifier.load_state_dict(base.classifier.state_dict())
    return subnet
