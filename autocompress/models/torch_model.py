"""Family ``torch-model``: the user's own network, searched per layer.

The space names a Python file and a function returning an ``nn.Module``
(``network: {family: torch-model, model: path/model.py:build, weights: optional.pt}``).
There are no architecture choices (a candidate's ``stages`` are empty): every Conv2d and
Linear layer that torch.fx finds carries its own bits, sparsity and rank, each layer its
own search group, except that layers coupled by a residual add (one channel group, pruned
together) share one. Without ``weights`` the network is trained once as the base.
Its ops for the latency table come from the graph traced as the model runs at inference;
a model that cannot be traced, or an op that cannot be timed alone, fails with one line
naming it.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from pydantic import Field, PrivateAttr
from torch import nn

from autocompress.compress.coupling import channel_groups, is_dense, is_depthwise, trace
from autocompress.errors import UserInputError
from autocompress.models.family import LayerSpec, ModelFamily, register_family
from autocompress.models.graph_ops import model_sites
from autocompress.models.slicing import whole_state
from autocompress.space import NetworkSettings, SearchSpace


class TorchModelNetwork(NetworkSettings):
    family: Literal["torch-model"]
    model: str | None = Field(None, pattern=r"^.+\.py:[A-Za-z_][A-Za-z0-9_]*$", description=(
        "FILE.py:FUNCTION returning the nn.Module (path relative to the working directory); "
        "absent where the Python API is given the model"))
    weights: str | None = Field(None, description="a torch state dict of the model; trained as the base if absent")


class TorchModelSpace(SearchSpace):
    network: TorchModelNetwork
    _model: nn.Module | Callable[[], nn.Module] | None = PrivateAttr(None)
    """The model the Python API was given (a module, or a zero-argument builder), where
    ``network.model`` is absent; pickled with the space, so Ray workers receive it."""

    def with_model(self, model: nn.Module | Callable[[], nn.Module]) -> TorchModelSpace:
        """This space with the user's ``model`` object in place of ``network.model``."""
        if self.network.model is not None:
            raise UserInputError(f"model: given, but the space names one too (network.model: {self.network.model})")
        space = self.model_copy()
        space._model = model
        return space


@dataclass(frozen=True)
class NoStage:
    """The family has no architecture choices: a candidate's stages are always empty."""


@functools.lru_cache(maxsize=16)
def _model_function(spec: str, mtime: float) -> Callable[[], nn.Module]:
    """The function ``spec`` (``FILE.py:FUNCTION``) names, its file imported once per version."""
    file, function = spec.rsplit(":", 1)
    module_spec = importlib.util.spec_from_file_location(f"autocompress_user_model_{abs(hash((spec, mtime)))}", file)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as error:  # the user's file: any error is reported as bad input
        raise UserInputError(f"network.model: {file}: cannot be imported: {type(error).__name__}: {error}") from None
    if not callable(getattr(module, function, None)):
        raise UserInputError(f"network.model: {file} has no function {function!r}")
    return getattr(module, function)


def _file(path: str, key: str) -> Path:
    if not Path(path).is_file():
        raise UserInputError(f"network.{key}: {path}: file not found")
    return Path(path)


@register_family
class TorchModelFamily(ModelFamily):
    name = "torch-model"
    stage_type = NoStage
    space_type = TorchModelSpace
    space: TorchModelSpace

    @property
    def label(self) -> str:
        given = self.space._model
        if given is None:
            return self.space.network.model
        return type(given).__name__ if isinstance(given, nn.Module) else getattr(given, "__qualname__", "model")

    def arch_knobs(self) -> list:
        return []

    def build(self, arch: Sequence) -> nn.Module:
        if arch:
            raise ValueError(f"{self.label}: a torch-model candidate has no stages, got {len(arch)}")
        given = self.space._model
        if isinstance(given, nn.Module):
            return copy.deepcopy(given)
        spec = self.space.network.model
        if given is None and spec is None:
            raise UserInputError("network.model: missing (FILE.py:FUNCTION), and no model was given to the Python API")
        if given is None:
            given = _model_function(spec, _file(spec.rsplit(":", 1)[0], "model").stat().st_mtime)
        model = given()
        if not isinstance(model, nn.Module):
            raise UserInputError(f"{self._origin}: returned {type(model).__name__}, not a torch nn.Module")
        return model

    @property
    def _origin(self) -> str:
        return f"network.model: {self.space.network.model}" if self.space._model is None else "model"

    @functools.cached_property
    def _layers(self) -> tuple[list[LayerSpec], dict[str, str]]:
        """Every Conv2d/Linear of the traced network as a ``LayerSpec``, and each one's search
        group (the first layer of its coupled channel group). Fails on an op no profile can time."""
        model = self.build([]).eval()
        model_sites(model, self.space.input_shape()[1:], self.label)  # one line if it cannot be traced or run
        graph = trace(model)
        groups = {name: group for group in channel_groups(model, graph) for name in group.producers}
        modules = dict(model.named_modules())
        specs, group_of = [], {}
        for node in graph.nodes:
            module = modules.get(node.target) if node.op == "call_module" else None
            if not isinstance(module, (nn.Conv2d, nn.Linear)) or node.target in group_of:
                continue
            group = groups.get(node.target)
            role = "linear" if isinstance(module, nn.Linear) else "depthwise" if is_depthwise(module) else "conv"
            specs.append(LayerSpec(node.target, role, group is not None and group.prunable, is_dense(module)))
            group_of[node.target] = group.producers[0] if group is not None else node.target
        return specs, group_of

    def compressible_layers(self, arch: Sequence) -> list[LayerSpec]:
        return list(self._layers[0])

    def layer_group(self, layer_name: str) -> str:
        return self._layers[1][layer_name]

    def inherited_state(self, subnet: nn.Module, base: nn.Module) -> dict[str, torch.Tensor]:
        return whole_state("", base)

    def fingerprint(self) -> object:
        """The model's file and weights (a given model: its structure and weights), so that
        editing either trains a new base."""
        net = self.space.network
        if self.space._model is not None:
            model = self.build([])
            digest = hashlib.sha256(str(model).encode())
            if isinstance(self.space._model, nn.Module):
                for tensor in model.state_dict().values():
                    digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
            return digest.hexdigest()
        digest = hashlib.sha256(_file(net.model.rsplit(":", 1)[0], "model").read_bytes())
        if net.weights is not None:
            digest.update(_file(net.weights, "weights").read_bytes())
        return digest.hexdigest()

    def base_weights(self) -> dict[str, torch.Tensor] | None:
        if isinstance(self.space._model, nn.Module):  # a module given is taken as trained
            return self.space._model.state_dict()
        path = self.space.network.weights
        if path is None:
            return None
        try:
            saved = torch.load(_file(path, "weights"), map_location="cpu", weights_only=True)
        except Exception as error:  # a corrupt or foreign file: one line, not a traceback
            raise UserInputError(f"network.weights: {path}: not a torch state dict ({error})") from None
        state = saved.get("state_dict", saved) if isinstance(saved, dict) else saved
        try:
            self.build([]).load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as error:
            first = str(error).strip().splitlines()[0]
            raise UserInputError(f"network.weights: {path} does not fit {self.label}: {first}") from None
        return state
