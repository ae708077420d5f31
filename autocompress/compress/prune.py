"""Pruning: channel pruning that physically removes filters, and unstructured masks.

Channel pruning follows the model's traced graph (torch.fx) from the pruned layer
through channel-wise operations (batch norm, activations, depthwise convs, modules with
a ``prune_channels`` method such as squeeze-excite, global pooling) to the one layer that
consumes those channels, and slices every one of them. A layer whose output reaches
anything else (a residual add, two consumers) cannot be channel-pruned and says so.

Unstructured pruning registers a magnitude mask as a weight parametrization, so the
zeros stay zero through fine-tuning (Deep Compression).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.nn.utils import parametrize

_PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.Identity,
                 nn.Dropout, nn.AdaptiveAvgPool2d, nn.Flatten)
_PASS_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.hardswish, F.silu, torch.flatten,
                   F.adaptive_avg_pool2d, F.dropout}


class PruningError(ValueError):
    """The requested layer cannot be pruned as asked."""


class _LeafTracer(fx.Tracer):
    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        return hasattr(module, "prune_channels") or super().is_leaf_module(module, qualname)


def _is_depthwise(module: nn.Module) -> bool:
    if not isinstance(module, nn.Conv2d):
        return False
    return module.groups > 1 and module.groups == module.in_channels == module.out_channels


def _follow(model: nn.Module, graph: fx.Graph, layer_name: str) -> tuple[list[str], str]:
    """Channel-wise followers of ``layer_name`` and the one layer consuming its channels."""
    modules = dict(model.named_modules())
    producer = next((n for n in graph.nodes if n.op == "call_module" and n.target == layer_name), None)
    if producer is None:
        raise PruningError(f"{layer_name}: not a module called in the model's forward pass")
    followers: list[str] = []
    consumers: list[str] = []
    frontier = list(producer.users)
    while frontier:
        node = frontier.pop()
        if len(node.all_input_nodes) > 1 and node.op != "call_module":
            raise PruningError(f"{layer_name}: its channels reach '{node.name}' ({node.target}), "
                               "which mixes them with another tensor (residual?)")
        if node.op == "call_module":
            module = modules[node.target]
            if isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)) or _is_depthwise(module) or hasattr(
                module, "prune_channels"
            ):
                followers.append(node.target)
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                consumers.append(node.target)
                continue
            elif not isinstance(module, _PASS_MODULES):
                raise PruningError(f"{layer_name}: its channels reach {type(module).__name__} "
                                   f"'{node.target}', which channel pruning cannot slice")
        elif node.op == "call_function" and node.target not in _PASS_FUNCTIONS:
            raise PruningError(f"{layer_name}: its channels reach '{node.name}', "
                               "which channel pruning cannot follow")
        elif node.op == "call_method" and node.target not in {"relu", "flatten", "view", "mean"}:
            raise PruningError(f"{layer_name}: its channels reach '.{node.target}()'")
        elif node.op == "output":
            raise PruningError(f"{layer_name}: its channels are the model's output")
        frontier.extend(node.users)
    if len(consumers) != 1:
        raise PruningError(f"{layer_name}: its channels feed {len(consumers)} layers, need exactly one")
    return followers, consumers[0]


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
        return new
    if isinstance(module, nn.Conv2d):
        depthwise = _is_depthwise(module)
        in_ch = len(keep) if dim == 1 or depthwise else module.in_channels
        out_ch = len(keep) if dim == 0 or depthwise else module.out_channels
        new = nn.Conv2d(in_ch, out_ch, module.kernel_size, module.stride, module.padding,
                        module.dilation, in_ch if depthwise else module.groups,
                        module.bias is not None, module.padding_mode)
    else:
        in_f = len(keep) if dim == 1 else module.in_features
        out_f = len(keep) if dim == 0 else module.out_features
        new = nn.Linear(in_f, out_f, module.bias is not None)
    weight_dim = 0 if isinstance(module, nn.Conv2d) and _is_depthwise(module) else dim
    new.weight.copy_(module.weight.index_select(weight_dim, keep))
    if module.bias is not None:
        new.bias.copy_(module.bias if dim == 1 else module.bias[keep])
    return new


def channels_to_keep(module: nn.Module, ratio: float) -> torch.Tensor:
    """Indices of the filters that survive pruning ``ratio`` of them, in original order."""
    total = module.weight.shape[0]
    keep_count = max(1, total - int(round(ratio * total)))
    top = torch.topk(filter_importance(module), keep_count).indices
    return torch.sort(top).values


@torch.no_grad()
def prune_channels(model: nn.Module, layer_name: str, ratio: float) -> int:
    """Remove ``ratio`` of ``layer_name``'s output filters (lowest L1 norm) in place.

    Returns the number of filters kept. Followers and the consumer are sliced to match.
    """
    if not 0.0 <= ratio < 1.0:
        raise PruningError(f"{layer_name}: channel sparsity must be in [0, 1), got {ratio}")
    graph = _LeafTracer().trace(model)
    followers, consumer = _follow(model, graph, layer_name)
    producer = model.get_submodule(layer_name)
    keep = channels_to_keep(producer, ratio)
    model.set_submodule(layer_name, _slice(producer, keep, 0))
    for name in followers:
        module = model.get_submodule(name)
        if hasattr(module, "prune_channels"):
            module.prune_channels(keep)
        else:
            model.set_submodule(name, _slice(module, keep, 0))
    model.set_submodule(consumer, _slice(model.get_submodule(consumer), keep, 1))
    return len(keep)


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

