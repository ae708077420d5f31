"""Helpers the families' weight inheritance shares: a child's tensors indexed from the base's."""

from __future__ import annotations

from itertools import chain

import torch
from torch import nn

BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


def top_indices(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` largest ``scores``, in their original order."""
    return torch.sort(torch.topk(scores, count).indices).values


def whole_state(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``module``, as they are, under ``prefix``."""
    lead = f"{prefix}." if prefix else ""
    return {f"{lead}{name}": tensor for name, tensor in chain(module.named_parameters(), module.named_buffers())}


def bn_state(prefix: str, source: nn.BatchNorm2d, index: torch.Tensor) -> dict[str, torch.Tensor]:
    """A batch norm's tensors for the channels ``index``."""
    state = {f"{prefix}.{name}": getattr(source, name)[index] for name in BN_TENSORS}
    state[f"{prefix}.num_batches_tracked"] = source.num_batches_tracked
    return state
