"""Model families: the one seam between the search and a kind of network.

A family builds a network from its architecture choices, lists the layers a policy can
compress and how they group, gives a child architecture its weights from the trained
base (each block slicing its own tensors, as Once-for-All's elastic layers do), and
enumerates the ops (``OpSignature``) that a candidate runs, so that the latency code
never needs to know the network. Families are registered by name and chosen by
``network.family`` in the search space.

Adding a family: one module with a ``ModelFamily`` subclass decorated with
``@register_family``, its settings as a ``SearchSpace`` subclass (its ``network`` and
``choices``) and its stage dataclass, and its module path in ``BUILTIN_MODULES``. Its ops
come from its traced graph (``graph_ops``) unless it enumerates them itself.
"""

from __future__ import annotations

import importlib
import random
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from autocompress.candidate import Candidate, LayerPolicy
from autocompress.compress.policy import apply_policy
from autocompress.errors import UserInputError
from autocompress.models.slicing import load_state
from autocompress.space import SearchSpace, per_space

if TYPE_CHECKING:
    from autocompress.hw.ops import BitsRule, OpSignature

BUILTIN_MODULES = ("autocompress.models.mobilenet", "autocompress.models.resnet", "autocompress.models.torch_model")
"""Modules whose import registers the built-in families."""
SITES_CACHED = 64
"""Architectures whose traced sites a family keeps (``candidate_ops``)."""


@dataclass(frozen=True)
class LayerSpec:
    """A layer a policy can compress, and which knobs apply to it.

    ``channel_prunable``: its output channels can be removed (they feed only channel-wise
    ops and one consumer); ``factorisable``: it is dense (not depthwise), so low-rank applies.
    """

    name: str
    role: str
    channel_prunable: bool
    factorisable: bool


@dataclass(frozen=True)
class ArchKnob:
    """One architecture choice of one stage: its short parameter name, the stage field it
    sets, and the values it may take."""

    param: str
    field: str
    choices: list


def uniform_layer_policy(spec: LayerSpec, **policy: Any) -> LayerPolicy:
    """``policy`` as it applies to the layer ``spec``: no channel pruning where its channels
    cannot be removed, full rank where it cannot be factorised."""
    settings = dict(policy)
    if settings.get("sparsity_kind", "channel") == "channel" and not spec.channel_prunable:
        settings["sparsity"] = 0.0
    if not spec.factorisable:
        settings["rank_ratio"] = 1.0
    return LayerPolicy(**settings)


Suggest = Callable[[str, list], Any]
"""``suggest(name, choices)``: an Optuna ``trial.suggest_categorical``, or a fixed pick."""


class ModelFamily(ABC):
    """A kind of network a search space can describe (see the module docstring)."""

    name: ClassVar[str]
    stage_type: ClassVar[type]
    """The frozen dataclass of one stage's architecture choices (``Candidate.stages``)."""
    space_type: ClassVar[type[SearchSpace]]
    """The settings class of the family's spaces: ``SearchSpace`` with the family's own
    ``network`` and ``choices`` (``space_file.space_class`` validates a file with it)."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self._sites: dict[tuple, list] = {}

    # -- architecture ---------------------------------------------------------------------
    @abstractmethod
    def arch_knobs(self) -> list[list[ArchKnob]]:
        """Each stage's architecture knobs, in the order they are sampled."""

    def suggest_arch(self, suggest: Suggest) -> tuple:
        """The architecture whose every knob ``suggest`` picks (Optuna names ``s<i>.<param>``)."""
        return tuple(self.stage_type(**{k.field: suggest(f"s{i}.{k.param}", list(k.choices)) for k in knobs})
                     for i, knobs in enumerate(self.arch_knobs()))

    def _arch_picking(self, pick: Callable[[list], Any]) -> list:
        return list(self.suggest_arch(lambda _name, choices: pick(choices)))

    def largest_arch(self) -> list:
        """The base network: every knob at its largest value."""
        return self._arch_picking(max)

    def smallest_arch(self) -> list:
        return self._arch_picking(min)

    def random_arch(self, rng: random.Random) -> list:
        return self._arch_picking(rng.choice)

    # -- networks and weights -------------------------------------------------------------
    def parse_candidate(self, text: str) -> Candidate:
        """A candidate from its JSON, its stages as this family's ``stage_type``."""
        return Candidate.from_json(text, self.stage_type)

    @abstractmethod
    def fingerprint(self) -> object:
        """What of the family's settings, beside the space's ``network``, data and training,
        determines the trained base (JSON data: it is part of the base file's name hash)."""

    def base_weights(self) -> dict[str, torch.Tensor] | None:
        """Trained weights of the base network given by the user (then it is not trained)."""
        return None

    @property
    def label(self) -> str:
        """How errors about the family's network name it."""
        return f"network.family {self.name}"

    @abstractmethod
    def build(self, arch: Sequence) -> nn.Module:
        """The float network of architecture ``arch`` (fresh weights)."""

    @abstractmethod
    def compressible_layers(self, arch: Sequence) -> list[LayerSpec]:
        """Every layer of ``arch``'s network that carries a per-layer policy, first to last."""

    @abstractmethod
    def layer_group(self, layer_name: str) -> str:
        """The group a layer's policy is searched with (one policy per group)."""

    @abstractmethod
    def inherited_state(self, subnet: nn.Module, base: nn.Module) -> dict[str, torch.Tensor]:
        """Every parameter and buffer of ``subnet`` taken from ``base``'s tensors by indexing
        (differentiable, so the base's supernet training can run subnets through it)."""

    @torch.no_grad()
    def inherit_weights(self, subnet: nn.Module, base: nn.Module) -> nn.Module:
        """Fill ``subnet`` from ``base``; returns it. The state dict loaded carries the
        subnet's own metadata (module versions, which a module's ``_load_from_state_dict``
        may read), and buffers that state dicts leave out (non-persistent) are copied too."""
        inherited = self.inherited_state(subnet, base)
        own = subnet.state_dict()
        load_state(subnet, {name: tensor for name, tensor in inherited.items() if name in own})
        buffers = dict(subnet.named_buffers())
        for name, tensor in inherited.items():
            if name not in own and name in buffers:
                buffers[name].copy_(tensor)
        return subnet

    def build_compressed(self, candidate: Candidate, base: nn.Module | None = None) -> nn.Module:
        """The candidate's network, with weights inherited from ``base`` if given, compressed."""
        model = self.build(list(candidate.stages))
        if base is not None:
            self.inherit_weights(model, base)
        return apply_policy(model, candidate.policy)

    # -- ops for the latency table ----------------------------------------------------------
    def model_ops(self, model: nn.Module, rule: BitsRule) -> list[OpSignature]:
        """The kernels a built (compressed) network runs for one image, in order (from its
        torch.fx graph; an op no profile can time raises ``UnsupportedOpError``)."""
        from autocompress.models.graph_ops import graph_ops

        return graph_ops(model, self.space.input_shape()[1:], rule, self.label)

    def candidate_ops(self, candidate: Candidate, rule: BitsRule) -> list[OpSignature]:
        """The kernels ``candidate`` runs: ``model_ops`` of its built network, computed without
        building it from the traced sites of its architecture (cached) and its policy; a
        policy the layers do not allow is built, which raises the precise error."""
        from autocompress.models.graph_ops import candidate_ops, model_sites

        if not self.allows(candidate):
            return self.model_ops(self.build_compressed(candidate), rule)
        key = tuple(candidate.stages)
        if key not in self._sites:
            if len(self._sites) >= SITES_CACHED:
                self._sites.pop(next(iter(self._sites)))
            self._sites[key] = model_sites(self.build(list(key)), self.space.input_shape()[1:], self.label)
        return candidate_ops(self._sites[key], candidate, rule)

    def allows(self, candidate: Candidate) -> bool:
        """Whether every policy names a compressible layer and uses only knobs it allows."""
        specs = {spec.name: spec for spec in self.compressible_layers(candidate.stages)}
        for name, policy in candidate.policy.items():
            spec = specs.get(name)
            channel = policy.sparsity > 0 and policy.sparsity_kind == "channel"
            if spec is None or (channel and not spec.channel_prunable) or (
                    policy.rank_ratio < 1.0 and not spec.factorisable):
                return False
        return True

    def op_archs(self) -> list[list]:
        """Architectures whose compressed variants run every kernel of the space: by default
        the largest (enough when smaller choices only drop blocks or channels the pruning
        enumeration already covers)."""
        return [self.largest_arch()]

    def space_ops(self, rule: BitsRule) -> list[OpSignature]:
        """Every distinct kernel any candidate of the space can run, sorted (by default from
        the traced graphs of ``op_archs``, each layer's knobs crossed with its groups' widths)."""
        from autocompress.models.graph_ops import traced_space_ops

        return traced_space_ops(self, self.op_archs(), rule)

    # -- candidates ---------------------------------------------------------------------------
    def uniform_candidate(self, stages: Sequence, **policy: Any) -> Candidate:
        """Every compressible layer of ``stages`` gets the same policy (where it applies)."""
        return Candidate(tuple(stages), {spec.name: uniform_layer_policy(spec, **policy)
                                         for spec in self.compressible_layers(stages)})

    def random_candidate(self, rng: random.Random) -> Candidate:
        """A uniformly random per-layer candidate (used for validation and tests)."""
        layer = self.space.choices.layer
        stages = tuple(self.random_arch(rng))
        policy = {}
        for spec in self.compressible_layers(stages):
            kinds = [k for k in layer.sparsity_kind if spec.channel_prunable or k == "unstructured"]
            policy[spec.name] = LayerPolicy(
                weight_bits=rng.choice(layer.weight_bits),
                activation_bits=rng.choice(layer.activation_bits),
                sparsity=rng.choice(layer.sparsity) if kinds else 0.0,
                sparsity_kind=rng.choice(kinds) if kinds else "unstructured",
                rank_ratio=rng.choice(layer.rank_ratio) if spec.factorisable else 1.0,
            )
        return Candidate(stages, policy)


FAMILIES: dict[str, type[ModelFamily]] = {}


def register_family(cls: type[ModelFamily]) -> type[ModelFamily]:
    """Class decorator: make ``cls`` available as ``network.family: <cls.name>``."""
    FAMILIES[cls.name] = cls
    return cls


def family_names() -> list[str]:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return sorted(FAMILIES)


@per_space
def family_of(space: SearchSpace) -> ModelFamily:
    """The family object of ``space`` (one per space object, reused)."""
    name = space.network.family
    if name not in family_names():
        raise UserInputError(f"network.family: unknown {name!r} (allowed: {', '.join(family_names())})")
    return FAMILIES[name](space)
