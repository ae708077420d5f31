"""Per-layer view of candidates' policies: the table behind heat maps and comparisons."""

from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

from autocompress.candidate import FLOAT_BITS, Candidate
from autocompress.models.family import family_of
from autocompress.space import SearchSpace

KNOBS = {"weight_bits": "weight bits", "activation_bits": "activation bits",
         "sparsity": "sparsity", "rank_ratio": "rank ratio"}
_PART_ORDER = {"stem": 0, "stages": 1, "head": 2, "classifier": 3,
               "reduce": -1, "expand": 0, "dw": 1, "se": 2, "project": 3}


def layer_sort_key(name: str) -> tuple:
    """Network order of a layer path: stem, stages by index, head, classifier."""
    return tuple(int(part) if part.isdigit() else _PART_ORDER.get(part, 9) for part in name.split("."))


def policy_frame(candidates: Mapping[int, Candidate], space: SearchSpace) -> pd.DataFrame:
    """One row per (trial, layer): the layer's role and its four knobs."""
    rows = []
    family = family_of(space)
    for number, candidate in candidates.items():
        for spec in family.compressible_layers(candidate.stages):
            layer = candidate.layer_policy(spec.name)
            rows.append({"trial": number, "layer": spec.name, "role": spec.role,
                         "weight_bits": layer.weight_bits, "activation_bits": layer.activation_bits,
                         "sparsity": layer.sparsity, "sparsity_kind": layer.sparsity_kind,
                         "rank_ratio": layer.rank_ratio})
    return pd.DataFrame(rows, columns=["trial", "layer", "role", "sparsity_kind", *KNOBS])


def knob_matrix(frame: pd.DataFrame, knob: str, trials: list[int]) -> pd.DataFrame:
    """Trials (rows, in the given order) x layers (network order); NaN where a layer is absent."""
    matrix = frame.pivot(index="trial", columns="layer", values=knob)
    return matrix.reindex(index=trials, columns=sorted(matrix.columns, key=layer_sort_key))


def role_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean of each knob per layer role (weight bits counted only where quantized)."""
    quantized = frame.assign(weight_bits=frame["weight_bits"].where(frame["weight_bits"] < FLOAT_BITS))
    means = quantized.groupby("role")[list(KNOBS)].mean()
    means["quantized_share"] = frame.groupby("role")["weight_bits"].apply(lambda b: (b < FLOAT_BITS).mean())
    order = ["stem", "expand", "depthwise", "se", "project", "head", "classifier"]
    return means.reindex([r for r in order if r in means.index] + sorted(set(means.index) - set(order)))


def short_layer(name: str) -> str:
    """``stages.1.0.expand.conv`` -> ``s1.0.expand`` (axis labels)."""
    return re.sub(r"\.conv$", "", re.sub(r"^stages\.", "s", name))


def _layer_text(name: str, candidate: Candidate) -> str:
    layer = candidate.layer_policy(name)
    parts = [f"w{layer.weight_bits}a{layer.activation_bits}"]
    if layer.sparsity > 0:
        parts.append(f"{layer.sparsity_kind[0]}{layer.sparsity:g}")
    if layer.rank_ratio < 1:
        parts.append(f"r{layer.rank_ratio:g}")
    return f"{short_layer(name)}: {' '.join(parts)}"


def policy_text(candidate: Candidate, separator: str = "<br>") -> str:
    """Architecture and per-layer policy in one compact block (hover text, tables)."""
    arch = " | ".join(stage.label() for stage in candidate.stages) or "fixed"
    layers = [_layer_text(name, candidate) for name in sorted(candidate.policy, key=layer_sort_key)]
    return separator.join([f"arch: {arch}", *layers])
