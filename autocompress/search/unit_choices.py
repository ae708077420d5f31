"""What the sensitivity-based allocator chooses from, unit by unit, on one device.

A *setting* is one value of one knob of a search unit (weight bits, activation bits, sparsity
kind and amount, rank), every other knob and unit uncompressed: what a sensitivity probe
measures (``sensitivity.py``). A *combination* is one choice per knob of the unit (each
uncompressed or one of its values), every other unit uncompressed, with its predicted latency
on the device: a policy the allocator may give the unit (``allocator.py``).

A setting that lowers no combination's predicted latency against the same combination with
its knob uncompressed (a bit-width the device runs no faster, a sparsity its kernels do not
skip) can only cost the allocator accuracy, never buy it latency: it is neither probed nor
combined. On a float-only CPU that leaves channel pruning (the demo space: 18 of its 106
settings, on cpu-torch-fp32), on BitFusion the bit-widths and rank as well (75).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from autocompress.candidate import FLOAT_BITS
from autocompress.hw.predict import predict
from autocompress.hw.profile import HardwareProfile
from autocompress.run.sensitivity import Probe
from autocompress.search.params import baseline_params, decode, unit_knobs
from autocompress.space import SearchSpace

SPARSITY = "sparsity"
"""The knob name of a sparsity setting: its value is ``kind:amount`` (the two parameters together)."""
LATENCY_TOLERANCE_MS = 1e-9
"""A setting pays when it lowers a combination's predicted latency by more than this."""


@dataclass(frozen=True)
class UnitSetting:
    """One knob value of one unit (a probe) and the unit's search parameters that set it."""

    probe: Probe
    params: dict[str, Any]


@dataclass(frozen=True)
class Combination:
    """One policy of one unit: its settings (none: the unit uncompressed) and its predicted
    latency (ms), every other unit uncompressed."""

    settings: tuple[UnitSetting, ...]
    candidate_hash: str
    latency_ms: float

    @property
    def params(self) -> dict[str, Any]:
        """The unit's search parameters that set it."""
        return _joined_params(self.settings)


def _joined_params(settings: tuple[UnitSetting, ...]) -> dict[str, Any]:
    return {name: value for setting in settings for name, value in setting.params.items()}


def uncompressed_params(space: SearchSpace) -> dict[str, Any] | None:
    """The search parameters of the base network uncompressed (None if the space has no float choice)."""
    return baseline_params(space, "float")


def knob_settings(unit: str, knobs: dict[str, list]) -> list[UnitSetting]:
    """Every compressing value of every knob of ``unit`` alone."""
    settings = [UnitSetting(Probe(unit=unit, knob=knob, value=str(value)), {f"{unit}.{knob}": value})
                for knob, uncompressed in (("wbits", FLOAT_BITS), ("abits", FLOAT_BITS), ("rank", 1.0))
                for value in knobs.get(knob, []) if value != uncompressed]
    settings += [UnitSetting(Probe(unit=unit, knob=SPARSITY, value=f"{kind}:{amount}"),
                             {f"{unit}.sparsity_kind": kind, f"{unit}.sparsity": amount})
                 for kind in knobs.get("sparsity_kind", []) for amount in knobs.get("sparsity", []) if amount > 0]
    return settings


class UnitChoices:
    """Every unit's combinations on ``profile``'s device, and the settings that pay there."""

    def __init__(self, space: SearchSpace, profile: HardwareProfile) -> None:
        float_params = uncompressed_params(space)
        if float_params is None:
            raise ValueError("the space offers no uncompressed (32-bit) choice to compare against")
        self.float_params = float_params
        self.float_ms = predict(decode(space, float_params), profile, space)
        self.combinations: dict[str, list[Combination]] = {}
        self.paying: list[UnitSetting] = []
        for unit, knobs in unit_knobs(space).items():
            combinations, paying = _unit_combinations(space, profile, float_params, knob_settings(unit, knobs))
            self.paying += paying
            paid = {setting.probe.key for setting in paying}
            self.combinations[unit] = [c for c in combinations if all(s.probe.key in paid for s in c.settings)]


def _unit_combinations(space: SearchSpace, profile: HardwareProfile, float_params: dict[str, Any],
                       settings: list[UnitSetting]) -> tuple[list[Combination], list[UnitSetting]]:
    """Every combination of ``settings`` (one unit's), and those of the settings that pay."""
    by_knob: dict[str, list[UnitSetting | None]] = {}
    for setting in settings:
        by_knob.setdefault(setting.probe.knob, [None]).append(setting)  # None: the knob left uncompressed
    latency_by_hash: dict[str, float] = {}
    combinations: dict[tuple, Combination] = {}  # by each knob's probe key (None: uncompressed)
    for parts in itertools.product(*by_knob.values()):
        chosen = tuple(setting for setting in parts if setting is not None)
        candidate = decode(space, float_params | _joined_params(chosen))
        if candidate.hash not in latency_by_hash:
            latency_by_hash[candidate.hash] = predict(candidate, profile, space)
        key = tuple(None if setting is None else setting.probe.key for setting in parts)
        combinations[key] = Combination(chosen, candidate.hash, latency_by_hash[candidate.hash])
    paid: set[tuple[str, str, str]] = set()
    for key, combination in combinations.items():
        for position, probe in enumerate(key):
            if probe is None or probe in paid:
                continue
            without = combinations[(*key[:position], None, *key[position + 1:])]
            if combination.latency_ms < without.latency_ms - LATENCY_TOLERANCE_MS:
                paid.add(probe)
    return list(combinations.values()), [s for s in settings if s.probe.key in paid]
