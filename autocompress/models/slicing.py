"""Helpers the families' weight inheritance shares: a child's tensors indexed from the base's."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from itertools import chain

import torch
from torch import nn

BN_TENSORS = ("weight", "bias", "running_mean", "running_var")


def top_indices(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` largest ``scores``, in their original order."""
    return torch.sort(torch.topk(scores, count).indices).values


def load_state(model: nn.Module, state: Mapping[str, torch.Tensor]) -> None:
    """Load ``state`` into ``model``, with the model's own state-dict metadata (the module
    versions a module's ``_load_from_state_dict`` may read, as torchvision's MNASNet does)
    where ``state`` carries none: a state rebuilt as a plain dict, or saved from one, lost it."""
    if getattr(state, "_metadata", None) is None:
        state = OrderedDict(state)
        state._metadata = model.state_dict()._metadata  # type: ignore[attr-defined]
    model.load_state_dict(state)


def whole_state(prefix: str, module: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer of ``module``, as they are, under ``prefix``."""
    lead = f"{prefix}." if prefix else ""
    return {f"{lead}{name}": tensor for name, tensor in chain(module.named_parameters(), module.named_buffers())}


def bn_state(prefix: str, source: nn.BatchNorm2d, index: torch.Tensor) -> dict[str, torch.Tensor]:
    """A batch norm's tensors for the channels ``index``."""
    state = {f"{prefix}.{name}": getattr(source, name)[index] for name in BN_TENSORS}
    state[f"{prefix}.num_batches_tracked"] = source.num_batches_tracked
    return state
