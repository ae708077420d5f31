"""Apply a per-layer compression policy to a model: low-rank -> pruning -> quantization."""

from __future__ import annotations

from collections.abc import Mapping

from torch import nn

from autocompress.candidate import FLOAT_BITS, LayerPolicy
from autocompress.compress.coupling import ChannelGroup, channel_groups
from autocompress.compress.lowrank import LowRankConv2d, LowRankLinear, factorise, rank_for
from autocompress.compress.prune import group_of, prune_groups, prune_unstructured
from autocompress.compress.quantize import quantize_module


def _dense_parts(model: nn.Module, name: str) -> list[str]:
    """Module paths holding the weights of layer ``name`` (two after factorisation)."""
    module = model.get_submodule(name)
    if isinstance(module, (LowRankConv2d, LowRankLinear)):
        return [f"{name}.0", f"{name}.1"]
    return [name]


def apply_policy(model: nn.Module, policy: Mapping[str, LayerPolicy]) -> nn.Module:
    """Compress ``model`` in place by ``policy`` (layer path -> LayerPolicy) and return it.

    Channel pruning of a factorised layer removes filters of its second (1x1) factor;
    layers coupled into one channel group are pruned at the largest ratio any of them asks
    for, all groups in one pass; quantization applies to both factors.
    """
    for name, layer in policy.items():
        if layer.rank_ratio < 1.0:
            module = model.get_submodule(name)
            model.set_submodule(name, factorise(module, rank_for(module, layer.rank_ratio)))
    pruned = {name: layer.sparsity for name, layer in policy.items()
              if layer.sparsity > 0 and layer.sparsity_kind == "channel"}
    if pruned:
        groups = channel_groups(model)
        ratios: dict[ChannelGroup, float] = {}
        for name, ratio in pruned.items():
            group = group_of(model, _dense_parts(model, name)[-1], groups)
            ratios[group] = max(ratio, ratios.get(group, 0.0))
        prune_groups(model, ratios)
    for name, layer in policy.items():
        if layer.sparsity > 0 and layer.sparsity_kind == "unstructured":
            for part in _dense_parts(model, name):
                prune_unstructured(model.get_submodule(part), layer.sparsity)
    for name, layer in policy.items():
        if layer.weight_bits < FLOAT_BITS or layer.activation_bits < FLOAT_BITS:
            for part in _dense_parts(model, name):
                quantized = quantize_module(model.get_submodule(part), layer.weight_bits, layer.activation_bits)
                model.set_submodule(part, quantized)
    return model
