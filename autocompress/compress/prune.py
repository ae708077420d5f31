"""Pruning: channel pruning that physically removes filters, and unstructured masks.

Channel pruning works on channel groups (``coupling.channel_groups``, from the model's
torch.fx graph): the layers whose outputs meet at a residual add lose the same channels,
chosen by L1 importance summed over them, and every batch norm, depthwise conv,
squeeze-excite and consuming layer on the way is sliced to match. A group that reaches
the model's input or output, or an operation the analysis cannot slice, is refused with
the reason.

Unstructured pruning registers a magnitude mask as a weight parametrization, so the
zeros stay zero through fine-tuning (Deep Compression).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from autocompress.compress.coupling import ChannelGroup, channel_groups, is_depthwise


class PruningError(ValueError):
    """The requested layer cannot be pruned as asked."""


def filter_importance(module: nn.Module) -> torch.Tensor:
    """L1 norm of each output filter (Li et al., 'Pruning Filters for Efficient ConvNets')."""
    return module.weight.detach().abs().flatten(1).sum(dim=1)


@torch.no_grad()
def _slice(module: nn.Module, keep: torch.Tensor, dim: int) -> nn.Module:
    """A copy of a conv/linear/batch-norm keeping ``keep`` along output (0) or input (1) dim."""
    if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)):
        new = type(module)(len(keep), module.eps, module.momentum, module.affine, module.track_running_stats)
        for name in ("weight", "bias", "running_mean", "running_var"):
            getattr(new, name).copy_(getattr(module, name)[keep])
        new.num_batches_tracked.copy_(module.num_batches_tracked)
        return new.train(module.training)
    if isinstance(module, nn.Conv2d):
        depthwise = is_depthwise(module)
        in_ch = len(keep) if dim == 1 or depthwise else module.in_channels
        out_ch = len(keep) if dim == 0 or depthwise else module.out_channels
        new = nn.Conv2d(in_ch, out_ch, module.kernel_size, module.stride, module.padding,
                        module.dilation, in_ch if depthwise else module.groups,
                        module.bias is not None, module.padding_mode)
    else:
        in_f = len(keep) if dim == 1 else module.in_features
        out_f = len(keep) if dim == 0 else module.out_features
        new = nn.Linear(in_f, out_f, module.bias is not None)
    weight_dim = 0 if isinstance(module, nn.Conv2d) and is_depthwise(module) else dim
    new.weight.copy_(module.weight.index_select(weight_dim, keep))
    if module.bias is not None:
        new.bias.copy_(module.bias if dim == 1 else module.bias[keep])
    return new.train(module.training)


def keep_count(channels: int, ratio: float) -> int:
    """Channels left after pruning ``ratio`` of ``channels``."""
    return max(1, channels - int(round(ratio * channels)))


def _top(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    top = torch.topk(scores, keep_count(len(scores), ratio)).indices
    return torch.sort(top).values


def group_of(model: nn.Module, layer_name: str, groups: list[ChannelGroup] | None = None) -> ChannelGroup:
    """The channel group that ``layer_name`` produces; ``PruningError`` if it cannot be pruned."""
    groups = channel_groups(model) if groups is None else groups
    group = next((g for g in groups if layer_name in g.producers), None)
    if group is None:
        raise PruningError(f"{layer_name}: not a conv or linear layer called in the model's forward pass")
    if group.refusals:
        raise PruningError(f"{layer_name}: {group.refusals[0]}")
    return group


@torch.no_grad()
def prune_group(model: nn.Module, group: ChannelGroup, ratio: float) -> int:
    """Remove ``ratio`` of the group's channels in place: the same ones from every producer
    (lowest summed L1 norm), sliced out of its followers and consumers. Returns the kept count."""
    if not 0.0 <= ratio < 1.0:
        raise PruningError(f"{group.producers[0]}: channel sparsity must be in [0, 1), got {ratio}")
    keep = _top(sum(filter_importance(model.get_submodule(name)) for name in group.producers), ratio)
    for name in group.producers:
        model.set_submodule(name, _slice(model.get_submodule(name), keep, 0))
    for name in group.followers:
        module = model.get_submodule(name)
        if hasattr(module, "prune_channels"):
            module.prune_channels(keep)
        else:
            model.set_submodule(name, _slice(module, keep, 0))
    for name in group.consumers:
        model.set_submodule(name, _slice(model.get_submodule(name), keep, 1))
    return len(keep)


def prune_channels(model: nn.Module, layer_name: str, ratio: float) -> int:
    """Remove ``ratio`` of ``layer_name``'s output channels, and the same channels of every
    layer coupled with it (``prune_group``), in place. Returns the number kept."""
    return prune_group(model, group_of(model, layer_name), ratio)


class WeightMask(nn.Module):
    """Parametrization multiplying a weight by a fixed 0/1 mask."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * self.mask


@torch.no_grad()
def prune_unstructured(module: nn.Module, ratio: float) -> None:
    """Zero the ``ratio`` smallest-magnitude weights of ``module`` and keep them zero."""
    weight = module.weight
    count = int(round(ratio * weight.numel()))
    if count == 0:
        return
    threshold = weight.abs().flatten().kthvalue(count).values
    mask = (weight.abs() > threshold).to(weight.dtype)
    parametrize.register_parametrization(module, "weight", WeightMask(mask))


def weight_mask(module: nn.Module) -> torch.Tensor | None:
    """The unstructured-sparsity mask on ``module``'s weight, if it has one."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    for parametrization in module.parametrizations.weight:
        if isinstance(parametrization, WeightMask):
            return parametrization.mask
    return None

