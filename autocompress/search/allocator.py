"""The sensitivity-based allocator: per-unit policies that lose the least under a latency budget.

What a practitioner runs in minutes instead of a search (HAWQ-V3, NNCF's HAWQ initialisation,
AIMET's mixed precision): measure each unit's sensitivity to each knob value alone
(``sensitivity.py``), then choose one policy per unit by integer programming.

- **Cost**: a policy's validation-loss increase, summed over its knob values as each measured
  alone on its unit (negative increases, measurement noise on a compression that cannot help,
  count as zero). The loss, not the accuracy: on a few hundred validation images the accuracy
  moves in steps of a few tenths of a point and most single-unit probes leave it unchanged,
  which would leave the program choosing among ties; the loss is continuous and, to first
  order, additive over small perturbations (HAWQ's sum of Hessian-weighted perturbations).
- **Latency**: each unit's policy's latency change against the uncompressed network, from the
  device's table (``hw/predict.py``), with every other unit uncompressed. The sum of these is
  *not* exact: channel pruning a unit changes the next unit's input channels, precision switches
  between neighbours are counted by the table's correction, and the correction is fitted on
  whole networks. So each solution's real predicted latency is checked against the budget, and
  where it breaks it the program is solved again with the budget tightened by the overshoot.
- **Solver**: SciPy's ``milp`` (HiGHS), exact; one binary per (unit, policy), one choice per
  unit, one latency row. A few hundred binaries after dominated policies are dropped solve in
  milliseconds, so OR-Tools would add a dependency for nothing.

Solved for budgets of ``BUDGETS`` times the float network's predicted latency: each solution
is a candidate on the base architecture, evaluated by the search as a reference baseline
labelled ``sensitivity-ilp@0.6`` (``label``).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import Bounds, LinearConstraint, milp

from autocompress.hw.predict import predict
from autocompress.hw.profile import HardwareProfile
from autocompress.run.sensitivity import ALLOCATOR_LABEL_PREFIX, SensitivityTable
from autocompress.search.params import decode
from autocompress.search.unit_choices import Combination, UnitChoices
from autocompress.space import SearchSpace

log = logging.getLogger(__name__)

BUDGETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
"""Latency budgets, as shares of the float network's predicted latency."""
MAX_RESOLVES = 8
"""Times a budget is tightened and solved again when the chosen candidate's predicted latency breaks it."""


def label(budget: float) -> str:
    return f"{ALLOCATOR_LABEL_PREFIX}{budget:g}"


@dataclass(frozen=True)
class UnitPolicy:
    """One policy of one unit: its search parameters, loss increase and latency change (ms)."""

    params: dict[str, Any]
    cost: float
    latency_delta_ms: float


@dataclass(frozen=True)
class Allocation:
    """The allocator's candidate for one budget."""

    label: str
    params: dict[str, Any]
    budget_ms: float
    predicted_ms: float
    summed_cost: float


def _unit_policies(combinations: list[Combination],
                   increases: dict[tuple[str, str, str], float], float_ms: float) -> list[UnitPolicy]:
    """The unit's policies (its combinations, one per distinct candidate, at the least cost)
    that no other policy beats on both cost and latency."""
    policies: dict[str, UnitPolicy] = {}
    for combination in combinations:
        cost = sum(max(0.0, increases[setting.probe.key]) for setting in combination.settings)
        known = policies.get(combination.candidate_hash)
        if known is None or cost < known.cost:
            policies[combination.candidate_hash] = UnitPolicy(combination.params, cost,
                                                              combination.latency_ms - float_ms)
    kept, best_cost = [], np.inf
    for policy in sorted(policies.values(), key=lambda p: (p.latency_delta_ms, p.cost)):
        if policy.cost < best_cost:  # faster ones all cost more: it is on the unit's front
            kept.append(policy)
            best_cost = policy.cost
    return kept


def solve(policies: dict[str, list[UnitPolicy]], delta_budget_ms: float) -> dict[str, UnitPolicy] | None:
    """The policy per unit of least summed cost whose summed latency change is at most
    ``delta_budget_ms`` (negative: a saving); among equal costs the fastest. None if none fits."""
    units = list(policies)
    flat = [(unit, policy) for unit in units for policy in policies[unit]]
    cost = np.array([policy.cost for _, policy in flat])
    latency = np.array([policy.latency_delta_ms for _, policy in flat])
    scale = max(float(np.abs(latency).max()), 1e-12)
    tie_break = 1e-6 * max(float(cost.max()), 1e-9) / scale  # below any cost difference that matters
    choose_one = np.array([[unit == u for u, _ in flat] for unit in units], dtype=float)
    result = milp(cost + tie_break * latency, integrality=np.ones(len(flat)), bounds=Bounds(0, 1),
                  constraints=[LinearConstraint(choose_one, 1, 1),
                               LinearConstraint(latency[None, :], -np.inf, delta_budget_ms)])
    if result.status != 0:
        return None
    chosen = np.flatnonzero(result.x > 0.5)
    return {flat[i][0]: flat[i][1] for i in chosen}


def allocate(space: SearchSpace, profile: HardwareProfile, choices: UnitChoices, table: SensitivityTable,
             budgets: tuple[float, ...] = BUDGETS) -> list[Allocation]:
    """The allocator's candidate for each budget it can meet (one per distinct candidate), from
    ``choices`` (the units' combinations on ``profile``'s device) costed by ``table``."""
    clock = time.perf_counter()
    float_params, float_ms = choices.float_params, choices.float_ms
    increases = table.loss_increases()
    policies = {unit: _unit_policies(combinations, increases, float_ms)
                for unit, combinations in choices.combinations.items()}
    allocations: list[Allocation] = []
    for share in budgets:
        allocation = _allocate_one(space, profile, policies, float_params, float_ms, share)
        if allocation is None:
            log.info("allocator: no candidate within %g of the float network's latency", share)
        elif all(allocation.params != earlier.params for earlier in allocations):
            allocations.append(allocation)
    log.info("allocator: %d candidates for %d budgets in %.1f s (%d unit policies)", len(allocations), len(budgets),
             time.perf_counter() - clock, sum(len(p) for p in policies.values()))
    return allocations


def _allocate_one(space: SearchSpace, profile: HardwareProfile, policies: dict[str, list[UnitPolicy]],
                  float_params: dict[str, Any], float_ms: float, share: float) -> Allocation | None:
    """Solve for ``share`` of ``float_ms``, tightening the budget while the chosen candidate's
    predicted latency breaks it (the per-unit latency changes do not add up exactly)."""
    budget_ms = share * float_ms
    delta_budget = budget_ms - float_ms
    for _ in range(MAX_RESOLVES):
        chosen = solve(policies, delta_budget)
        if chosen is None:
            return None
        params = dict(float_params)
        for policy in chosen.values():
            params |= policy.params
        predicted = predict(decode(space, params), profile, space)
        if predicted <= budget_ms:
            return Allocation(label(share), params, budget_ms, predicted, sum(p.cost for p in chosen.values()))
        delta_budget -= predicted - budget_ms
    log.info("allocator: the candidates for %g of the float latency kept breaking it after %d solves",
             share, MAX_RESOLVES)
    return None
