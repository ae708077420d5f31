"""Optuna parameters <-> candidates, and the uniform reference baselines.

The sampler sees a *static* parameter set: four architecture knobs per stage and one
compression policy per layer group (the stem, each stage, the head, the classifier),
applied to every layer of the group where it applies (as ``uniform_candidate`` does).
Static, because NSGA-II crosses over only the parameters every trial has, and per-group
rather than per-layer, because a few hundred trials cannot fit ~200 per-layer knobs.
The decoded ``Candidate`` is still per-layer, so the rest of the system is unaffected.

The first and the last layer (the stem conv, the classifier) are held to the space's
``first_last_min_bits`` unless it is null: measured over 360 trials of the search-quality
benchmark, a rank-0.25 classifier (rank 2 for 10 classes) left trials at a mean accuracy
of 0.41 and 4-bit stem activations at 0.68, against 0.77 over all trials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from autocompress.candidate import Candidate, LayerPolicy, StageArch, uniform_candidate
from autocompress.models.mobilenet import compressible_layers, largest_arch
from autocompress.space import SearchSpace

Suggest = Callable[[str, list], Any]
"""``suggest(name, choices)``: an Optuna ``trial.suggest_categorical``."""


def layer_group(layer_name: str) -> str:
    """``stages.2.1.expand.conv`` -> ``stages.2``; ``stem.conv`` -> ``stem``."""
    parts = layer_name.split(".")
    return ".".join(parts[:2]) if parts[0] == "stages" else parts[0]


END_GROUPS = ("stem", "classifier")
"""The groups of the first and the last layer."""


def _at_least(choices: list[int], floor: int) -> list[int]:
    """The bit-widths in ``choices`` from ``floor`` up (``floor`` itself if none reaches it)."""
    return [bits for bits in choices if bits >= floor] or [floor]


def _group_knobs(space: SearchSpace) -> dict[str, dict[str, list]]:
    """Each layer group's policy knobs and their choices (only knobs some layer can use)."""
    layer = space.choices.layer
    floor = layer.first_last_min_bits
    groups: dict[str, dict[str, list]] = {}
    for spec in compressible_layers(space, largest_arch(space)):
        knobs = groups.setdefault(layer_group(spec.name), {
            "wbits": list(layer.weight_bits), "abits": list(layer.activation_bits)})
        kinds = [k for k in layer.sparsity_kind if spec.channel_prunable or k == "unstructured"]
        if kinds:
            known = knobs.get("sparsity_kind", [])
            knobs["sparsity_kind"] = [k for k in layer.sparsity_kind if k in known or k in kinds]
            knobs["sparsity"] = list(layer.sparsity)
        if spec.factorisable:
            knobs["rank"] = list(layer.rank_ratio)
    if floor is not None:
        for group in END_GROUPS:
            groups[group] = {"wbits": _at_least(layer.weight_bits, floor),
                             "abits": _at_least(layer.activation_bits, floor)}
    return groups


_POLICY_FIELDS = {"wbits": "weight_bits", "abits": "activation_bits", "sparsity": "sparsity",
                  "sparsity_kind": "sparsity_kind", "rank": "rank_ratio"}


def suggest_candidate(space: SearchSpace, suggest: Suggest) -> Candidate:
    """The candidate whose knobs ``suggest`` picks (a trial's params, or fixed values)."""
    block = space.choices.block
    stages = tuple(
        StageArch(
            depth=suggest(f"s{i}.depth", space.stage_depths(i)),
            kernel_size=suggest(f"s{i}.kernel", list(block.kernel_size)),
            expand_ratio=suggest(f"s{i}.expand", list(block.expand_ratio)),
            squeeze_excite=suggest(f"s{i}.se", list(block.squeeze_excite)),
        )
        for i in range(len(space.network.stages))
    )
    policy: dict[str, LayerPolicy] = {}
    for group, knobs in _group_knobs(space).items():
        settings = {_POLICY_FIELDS[knob]: suggest(f"{group}.{knob}", choices) for knob, choices in knobs.items()}
        grouped = uniform_candidate(space, stages, **settings).policy
        policy.update({name: _canonical(p) for name, p in grouped.items() if layer_group(name) == group})
    return Candidate(stages, policy)


def _canonical(policy: LayerPolicy) -> LayerPolicy:
    """Zero sparsity of any kind is the same layer: give it one form, so it has one hash."""
    return policy if policy.sparsity > 0 else replace(policy, sparsity_kind=LayerPolicy.sparsity_kind)


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
    params: dict[str, Any] = {}
    for i, stage in enumerate(largest_arch(space)):
        params |= {f"s{i}.depth": stage.depth, f"s{i}.kernel": stage.kernel_size,
                   f"s{i}.expand": stage.expand_ratio, f"s{i}.se": stage.squeeze_excite}
    for group, knobs in _group_knobs(space).items():
        settings = dict(wanted)
        if group in END_GROUPS and space.choices.layer.first_last_min_bits is not None:
            # held to their floor: a 4-bit baseline keeps 8-bit first and last layers, as in HAQ
            settings |= {_POLICY_FIELDS[knob]: min((b for b in knobs[knob] if b >= wanted[_POLICY_FIELDS[knob]]),
                                                   default=None) for knob in ("wbits", "abits")}
        if "sparsity_kind" in knobs and settings["sparsity_kind"] not in knobs["sparsity_kind"]:
            # the group cannot use this kind: uniform_candidate leaves it unpruned
            settings |= {"sparsity_kind": knobs["sparsity_kind"][0], "sparsity": 0.0}
        params |= {f"{group}.{knob}": settings[_POLICY_FIELDS[knob]] for knob in knobs}
    choices = search_params(space)
    if any(value not in choices[name] for name, value in params.items()):
        return None
    return params
