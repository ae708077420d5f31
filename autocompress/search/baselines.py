"""The reference baselines every search queues before its own trials: the uniform policies, and
the sensitivity-based allocator's candidates."""

from __future__ import annotations

import logging

import optuna
import ray

from autocompress.hw.profile import HardwareProfile
from autocompress.run.run import Run
from autocompress.run.sensitivity import ALLOCATOR_LABEL_PREFIX
from autocompress.run.trial import Kind
from autocompress.search.allocator import allocate
from autocompress.search.params import BASELINES, baseline_params
from autocompress.search.sensitivity import Probes, run_table
from autocompress.search.unit_choices import UnitChoices, uncompressed_params
from autocompress.space import SearchSpace

log = logging.getLogger(__name__)


def enqueue_uniform(study: optuna.Study, space: SearchSpace, existing: list[optuna.trial.FrozenTrial]) -> int:
    """Queue the uniform baselines not queued yet; returns how many trials are waiting."""
    known = {t.user_attrs.get("label") for t in existing if t.user_attrs.get("kind") == Kind.BASELINE}
    waiting = sum(t.state == optuna.trial.TrialState.WAITING for t in existing)
    for label in BASELINES:
        if label in known:
            continue
        params = baseline_params(space, label)
        if params is None:
            log.warning("baseline %s skipped: one of its values is not a choice of the space", label)
            continue
        study.enqueue_trial(params, user_attrs={"kind": Kind.BASELINE, "label": label})
        waiting += 1
    return waiting


def enqueue_allocations(study: optuna.Study, run: Run, profile: HardwareProfile, probe: Probes) -> int:
    """Queue the sensitivity-based allocator's candidates (measuring the sensitivity first with
    ``probe``, unless the run folder holds it), unless a driver queued them before; returns how many."""
    if any(str(t.user_attrs.get("label", "")).startswith(ALLOCATOR_LABEL_PREFIX)
           for t in study.get_trials(deepcopy=False)):
        return 0
    if uncompressed_params(run.space) is None:
        log.warning("sensitivity baselines skipped: the space has no uncompressed (32-bit) choice")
        return 0
    try:
        choices = UnitChoices(run.space, profile)
        allocations = allocate(run.space, profile, choices, run_table(run, choices, probe))
    except ray.exceptions.RayError as error:  # a probe failed: the search goes on without them
        log.error("sensitivity baselines skipped: a probe failed: %s", str(error).splitlines()[0])
        return 0
    for allocation in allocations:
        study.enqueue_trial(allocation.params, user_attrs={"kind": Kind.BASELINE, "label": allocation.label})
        log.info("%s: predicted %.4g ms (budget %.4g ms), summed loss increase %.4f", allocation.label,
                 allocation.predicted_ms, allocation.budget_ms, allocation.summed_cost)
    return len(allocations)
