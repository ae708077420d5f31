"""Optuna parameters <-> candidates, and the uniform reference baselines.

The sampler sees a *static* parameter set: four architecture knobs per stage and one
compression policy per search *unit*, applied to every layer of the unit where it applies
(as ``uniform_candidate`` does). A unit is a layer group (the stem, each stage, the head,
the classifier) by default, or each layer of the base network with the space's
``search.granularity: layer`` (as HAQ and APQ choose). Static, because NSGA-II crosses over
only the parameters every trial has; per group by default, because a few hundred trials
cannot fit ~200 per-layer knobs without a predictor. The decoded ``Candidate`` is per-layer
either way, so the rest of the system is unaffected.

The first and the last layer (the stem conv, the classifier) are held to the space's
``first_last_min_bits`` unless it is null, as HAQ and APQ do: compressed freely, a factorised classifier or
4-bit stem activations cost a trial much of its accuracy (``docs/decisions.md``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from autocompress.candidate import Candidate, LayerPolicy
from autocompress.models.family import ModelFamily, Suggest, family_of, uniform_layer_policy
from autocompress.space import SearchSpace, per_space


def unit_of(space: SearchSpace, family: ModelFamily, layer_name: str) -> str:
    """The search unit whose policy the layer ``layer_name`` takes (``search.granularity``)."""
    return layer_name if space.search.granularity == "layer" else family.layer_group(layer_name)


def end_units(space: SearchSpace, family: ModelFamily) -> tuple[str, str]:
    """The units of the first and the last layer of the base network."""
    layers = family.compressible_layers(family.largest_arch())
    return unit_of(space, family, layers[0].name), unit_of(space, family, layers[-1].name)


def _at_least(choices: list[int], floor: int) -> list[int]:
    """The bit-widths in ``choices`` from ``floor`` up (``floor`` itself if none reaches it)."""
    return [bits for bits in choices if bits >= floor] or [floor]


@per_space
def unit_knobs(space: SearchSpace) -> dict[str, dict[str, list]]:
    """Each search unit's policy knobs (``wbits``, ``abits``, ``sparsity_kind``, ``sparsity``,
    ``rank``) and their choices (only knobs some layer of the unit can use)."""
    layer = space.choices.layer
    floor = layer.first_last_min_bits
    family = family_of(space)
    groups: dict[str, dict[str, list]] = {}
    for spec in family.compressible_layers(family.largest_arch()):
        knobs = groups.setdefault(unit_of(space, family, spec.name), {
            "wbits": list(layer.weight_bits), "abits": list(layer.activation_bits)})
        kinds = [k for k in layer.sparsity_kind if spec.channel_prunable or k == "unstructured"]
        if kinds:
            known = knobs.get("sparsity_kind", [])
            knobs["sparsity_kind"] = [k for k in layer.sparsity_kind if k in known or k in kinds]
            knobs["sparsity"] = list(layer.sparsity)
        if spec.factorisable:
            knobs["rank"] = list(layer.rank_ratio)
    if floor is not None:
        for group in end_units(space, family):
            groups[group] = {"wbits": _at_least(layer.weight_bits, floor),
                             "abits": _at_least(layer.activation_bits, floor)}
    return groups


POLICY_FIELDS = {"wbits": "weight_bits", "abits": "activation_bits", "sparsity": "sparsity",
                  "sparsity_kind": "sparsity_kind", "rank": "rank_ratio"}


def suggest_candidate(space: SearchSpace, suggest: Suggest) -> Candidate:
    """The candidate whose knobs ``suggest`` picks (a trial's params, or fixed values)."""
    family = family_of(space)
    stages = family.suggest_arch(suggest)
    settings = {group: {POLICY_FIELDS[knob]: suggest(f"{group}.{knob}", choices) for knob, choices in knobs.items()}
                for group, knobs in unit_knobs(space).items()}
    policy = {spec.name: _canonical(uniform_layer_policy(spec, **settings[unit_of(space, family, spec.name)]))
              for spec in family.compressible_layers(stages)}
    return Candidate(stages, policy)


def decode(space: SearchSpace, params: Mapping[str, Any]) -> Candidate:
    """The candidate of a full set of search parameters (a trial's, or one drawn or composed)."""
    return suggest_candidate(space, lambda name, _choices: params[name])


def _canonical(policy: LayerPolicy) -> LayerPolicy:
    """Zero sparsity of any kind is the same layer: give it one form, so it has one hash."""
    if policy.sparsity > 0 or policy.sparsity_kind == LayerPolicy.sparsity_kind:
        return policy
    return replace(policy, sparsity_kind=LayerPolicy.sparsity_kind)


BASELINES: dict[str, dict[str, Any]] = {
    "float": {},
    "uniform-8bit": {"weight_bits": 8, "activation_bits": 8},
    "uniform-4bit": {"weight_bits": 4, "activation_bits": 8},
    "channel-50": {"sparsity": 0.5, "sparsity_kind": "channel"},
    "rank-0.5": {"rank_ratio": 0.5},
}
"""Reference policies on the base architecture, evaluated before the search."""


def search_params(space: SearchSpace) -> dict[str, list]:
    """Every parameter the sampler sees, with its choices (the set is the same for all trials)."""
    recorded: dict[str, list] = {}

    def record(name: str, choices: list) -> Any:
        recorded[name] = choices
        return choices[0]

    suggest_candidate(space, record)
    return recorded


def baseline_params(space: SearchSpace, label: str) -> dict[str, Any] | None:
    """Optuna params that decode to baseline ``label``, or None if a value is not a choice."""
    defaults = {"weight_bits": 32, "activation_bits": 32, "sparsity": 0.0,
                "sparsity_kind": "channel", "rank_ratio": 1.0}
    wanted = defaults | BASELINES[label]
    family = family_of(space)
    params: dict[str, Any] = {}
    family.suggest_arch(lambda name, choices: params.setdefault(name, max(choices)))
    for group, knobs in unit_knobs(space).items():
        settings = dict(wanted)
        if group in end_units(space, family) and space.choices.layer.first_last_min_bits is not None:
            # held to their floor: a 4-bit baseline keeps 8-bit first and last layers, as in HAQ
            settings |= {POLICY_FIELDS[knob]: min((b for b in knobs[knob] if b >= wanted[POLICY_FIELDS[knob]]),
                                                   default=None) for knob in ("wbits", "abits")}
        if "sparsity_kind" in knobs and settings["sparsity_kind"] not in knobs["sparsity_kind"]:
            # the group cannot use this kind: uniform_candidate leaves it unpruned
            settings |= {"sparsity_kind": knobs["sparsity_kind"][0], "sparsity": 0.0}
        params |= {f"{group}.{knob}": settings[POLICY_FIELDS[knob]] for knob in knobs}
    choices = search_params(space)
    if any(value not in choices[name] for name, value in params.items()):
        return None
    return params
