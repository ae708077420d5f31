"""Pruning: channel pruning that physically removes filters, and unstructured masks.

Channel pruning works on channel groups (``coupling.analyse``, from the model's torch.fx
graph): the layers whose outputs meet at a residual add or a squeeze-excite multiply lose
the same channels, chosen by L1 importance summed over them, and every batch norm,
depthwise conv, layer scale and consuming layer is sliced to match, at the offsets where
the group's channels lie behind a concat or a flatten. All requested groups are pruned in
one pass, each module sliced once. A group that reaches the model's input or output, or an
operation the analysis cannot slice, is refused with the reason.

Unstructured pruning registers a magnitude mask as a weight parametrization, so the
zeros stay zero through fine-tuning (Deep Compression).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn
from torch.nn.utils import parametrize, skip_init

from autocompress.compress.coupling import (
    ChannelGroup,
    Layout,
    Role,
    Use,
    analyse,
    channel_groups,
    is_depthwise,
    keep_count,
)


class PruningError(ValueError):
    """The requested layer cannot be pruned as asked."""


def filter_importance(module: nn.Module) -> torch.Tensor:
    """L1 norm of each output filter (Li et al., 'Pruning Filters for Efficient ConvNets')."""
    return module.weight.detach().abs().flatten(1).sum(dim=1)


def _select(tensor: torch.Tensor, dim: int, index: torch.Tensor | None) -> torch.Tensor:
    return tensor if index is None else tensor.index_select(dim, index)


@torch.no_grad()
def _sliced(module: nn.Module, out_index: torch.Tensor | None, in_index: torch.Tensor | None) -> nn.Module:
    """A copy of a conv/linear keeping ``out_index`` of its outputs and ``in_index`` of its
    inputs (None: all), or of a channel-wise module (norm, depthwise conv) keeping ``out_index``."""
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
        new = type(module)(len(out_index), module.eps, module.momentum, module.affine, module.track_running_stats)
        new.load_state_dict({name: _select(value, 0, out_index) if value.dim() else value
                             for name, value in module.state_dict().items()})
        return new.train(module.training)
    if isinstance(module, nn.LayerNorm):
        new = nn.LayerNorm(len(out_index), module.eps, module.elementwise_affine, module.bias is not None)
        new.load_state_dict({name: value[out_index] for name, value in module.state_dict().items()})
        return new.train(module.training)
    weight = _select(module.weight, 0, out_index)
    if isinstance(module, nn.Conv2d) and module.groups > 1 and not is_depthwise(module) and in_index is not None:
        weight = _grouped_inputs(weight, in_index, module.groups, module.in_channels // module.groups)
    elif not is_depthwise(module):
        weight = _select(weight, 1, in_index)
    out_width, in_width = weight.shape[0], weight.shape[1] * getattr(module, "groups", 1)
    if isinstance(module, nn.Conv2d):
        depthwise = is_depthwise(module)
        new = skip_init(nn.Conv2d, out_width if depthwise else in_width, out_width, module.kernel_size, module.stride,
                        module.padding, module.dilation, out_width if depthwise else module.groups,
                        module.bias is not None, module.padding_mode)
    else:
        new = skip_init(nn.Linear, in_width, out_width, module.bias is not None)
    new.weight.copy_(weight)
    if module.bias is not None:
        new.bias.copy_(_select(module.bias, 0, out_index))
    return new.train(module.training)


def _grouped_inputs(weight: torch.Tensor, in_index: torch.Tensor, groups: int, per_group: int) -> torch.Tensor:
    """A grouped conv's weight (out, in/groups, k, k) keeping the inputs ``in_index`` (an
    equal count in each group, ascending): each output's group reads its own kept inputs."""
    local = (in_index - torch.arange(groups).repeat_interleave(len(in_index) // groups) * per_group).view(groups, -1)
    blocks = weight.view(groups, -1, *weight.shape[1:])
    index = local[:, None, :, None, None].expand(-1, blocks.shape[1], -1, *weight.shape[2:])
    return blocks.gather(2, index).flatten(0, 1)


def _top(scores: torch.Tensor, ratio: float, blocks: int) -> torch.Tensor:
    """The channels to keep: the highest ``scores``, an equal count in each of ``blocks`` blocks."""
    per_block = scores.view(blocks, -1)
    top = torch.topk(per_block, keep_count(per_block.shape[1], ratio), dim=1).indices
    return torch.sort((top + torch.arange(blocks)[:, None] * per_block.shape[1]).flatten()).values


def group_of(model: nn.Module, layer_name: str, groups: list[ChannelGroup] | None = None) -> ChannelGroup:
    """The channel group that ``layer_name`` produces; ``PruningError`` if it cannot be pruned."""
    groups = channel_groups(model) if groups is None else groups
    group = next((g for g in groups if layer_name in g.producers), None)
    if group is None:
        raise PruningError(f"{layer_name}: not a conv or linear layer called in the model's forward pass")
    if group.refusals:
        raise PruningError(f"{layer_name}: {group.refusals[0]}")
    return group


def _slice_use(model: nn.Module, use: Use, kept: Callable[[ChannelGroup], torch.Tensor | None]) -> None:
    """Slice one module or parameter along every pruned group it meets."""

    def index(layout: Layout | None) -> torch.Tensor | None:
        if layout is None or all(kept(part.group) is None for part in layout.parts):
            return None
        return layout.indices(kept)

    in_index = index(use.layout)
    if use.role is Role.PARAMETER:
        if in_index is not None:
            owner, _, name = use.path.rpartition(".")
            parameter = model.get_parameter(use.path)
            setattr(model.get_submodule(owner), name,
                    nn.Parameter(parameter.detach().index_select(use.dim, in_index), parameter.requires_grad))
        return
    module = model.get_submodule(use.path)
    if use.role is Role.FOLLOWER:
        if in_index is None:
            return
        if hasattr(module, "prune_channels"):
            module.prune_channels(in_index)
        else:
            model.set_submodule(use.path, _sliced(module, in_index, None))
        return
    out_index = index(use.output)
    if in_index is not None or out_index is not None:
        model.set_submodule(use.path, _sliced(module, out_index, in_index))


@torch.no_grad()
def prune_groups(model: nn.Module, ratios: Mapping[ChannelGroup, float]) -> dict[ChannelGroup, int]:
    """Remove ``ratios[group]`` of each group's channels in place, in one pass: the same ones
    from every producer of a group (lowest summed L1 norm), sliced out of every follower and
    consumer at the offsets where they lie (concats, flattens). The groups are those of
    ``channel_groups(model)``, told apart by their first producer. Returns each group's kept count."""
    analysis = analyse(model)
    current = {group.producers[0]: group for group in analysis.groups}
    keep: dict[ChannelGroup, torch.Tensor] = {}
    counts: dict[ChannelGroup, int] = {}
    for asked, ratio in ratios.items():
        group = current.get(asked.producers[0]) if asked.producers else None
        if group is None or group.producers != asked.producers:
            raise PruningError(f"{asked.producers}: not a channel group of this model")
        if group.refusals:
            raise PruningError(f"{group.producers[0]}: {group.refusals[0]}")
        if not 0.0 <= ratio < 1.0:
            raise PruningError(f"{group.producers[0]}: channel sparsity must be in [0, 1), got {ratio}")
        scores = sum(filter_importance(model.get_submodule(name)) for name in group.producers)
        keep[group] = _top(scores, ratio, group.blocks)
        counts[asked] = len(keep[group])
    for use in analysis.uses:
        _slice_use(model, use, keep.get)
    return counts


def prune_group(model: nn.Module, group: ChannelGroup, ratio: float) -> int:
    """Remove ``ratio`` of one group's channels in place (``prune_groups``). Returns the kept count."""
    return prune_groups(model, {group: ratio})[group]


def prune_channels(model: nn.Module, layer_name: str, ratio: float) -> int:
    """Remove ``ratio`` of ``layer_name``'s output channels, and the same channels of every
    layer coupled with it, in place. Returns the number kept."""
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

