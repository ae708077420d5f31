"""The front of a run measured on its profile's runtime, against the latencies predicted for it.

Every model on the front (and the run's float baseline, for reference) is loaded as the
search saved it, prepared by the profile's registered runtime (its ``prepare``: the ONNX
export and int8 QDQ the exporter writes, or the frozen eager model for ``torch-fp32``) and
timed the way the profile's validation times networks (``validate.measure_models``:
interleaved rounds, the profile's threads and batch size), so a prediction and its check
differ only in what the table cannot know.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau

from autocompress.errors import UserInputError
from autocompress.hw.predict import predict
from autocompress.hw.profile import HardwareProfile, Statistic, utc_now
from autocompress.hw.runtimes import measured_runtime
from autocompress.hw.validate import TIMING, measure_models
from autocompress.inputs import loading
from autocompress.pipeline import load_trial_model
from autocompress.run.run import Run
from autocompress.run.trial import Kind, Trial
from autocompress.run.verification import MeasuredModel, Verification


@dataclass(frozen=True)
class Targets:
    """What a verification measures: the front's trials and the float baseline (if any)."""

    run: Run
    profile: HardwareProfile
    front: list[Trial]
    float_baseline: Trial | None


def measurable_profile(profile: HardwareProfile | None, origin: str) -> HardwareProfile:
    """``profile`` if its device can be measured on this machine, else one line saying why not."""
    if profile is None:
        raise UserInputError(f"{origin}: the run has no device profile, so there is no device to measure on")
    device = profile.device
    if not profile.measured:
        raise UserInputError(f"{origin}: device '{device.name}' is modelled ({device.runtime}): its latencies come "
                             "from a formula, there is nothing to measure it on")
    measured_runtime(device.runtime, origin)  # a registered runtime this machine can time
    return profile


def targets(run: Run) -> Targets:
    """The models to measure, every input checked before anything is measured or written."""
    profile = measurable_profile(run.profile, str(run.files.profile))
    if not run.complete:
        raise UserInputError(f"{run.path}: no finished trials ({run.files.trials.name} missing, empty or all "
                             "unfinished)")
    members = run.front()
    if not members:
        raise UserInputError(f"{run.path}: no Pareto front (no finished trial meets the run's constraints)")
    floats = [t for t in run.complete if t.kind is Kind.BASELINE and t.label == "float"]
    for trial in [*members, *floats[:1]]:
        path = run.model_path(trial)
        if not path.is_file():
            raise UserInputError(f"{path}: the trial's model was not saved")
    return Targets(run, profile, members, floats[0] if floats else None)


def _pct(slower: float, faster: float) -> str:
    return f"{100 * (slower / faster - 1):.1f}%"


def _flagged(model: MeasuredModel, front: list[MeasuredModel], baseline: MeasuredModel | None,
             statistic: Statistic) -> MeasuredModel:
    """``model`` with a flag for each front model it was predicted to beat but measured slower
    than, and one if it measured slower than the float baseline."""
    predicted, measured = model.predicted_ms[statistic], model.measured_ms[statistic]
    flags = [f"measured {_pct(measured, other.measured_ms[statistic])} slower than trial {other.trial}, "
             f"predicted {_pct(other.predicted_ms[statistic], predicted)} faster" for other in front
             if other.trial != model.trial and predicted < other.predicted_ms[statistic]
             and measured > other.measured_ms[statistic]]
    if baseline is not None and baseline.trial != model.trial and measured > baseline.measured_ms[statistic]:
        flags.append(f"measured {_pct(measured, baseline.measured_ms[statistic])} slower than the float baseline "
                     f"(trial {baseline.trial})")
    return model.model_copy(update={"flags": flags})


def _rank_agreement(front: list[MeasuredModel], statistic: Statistic) -> float | None:
    if len(front) < 2:
        return None
    tau = kendalltau([m.predicted_ms[statistic] for m in front], [m.measured_ms[statistic] for m in front]).statistic
    return None if np.isnan(tau) else float(tau)


def measure(plan: Targets) -> Verification:
    """Time the front (and float baseline) on the profile's runtime; predicted vs measured."""
    run, profile = plan.run, plan.profile
    trials = [*plan.front, *([plan.float_baseline] if plan.float_baseline is not None else [])]
    loaded = []
    for trial in trials:
        path = run.model_path(trial)
        with loading(path, "trial model"):
            loaded.append(load_trial_model(run.space, path))
    device = profile.device
    timings = measure_models((model for _, model in loaded), device.runtime, run.space.input_shape(device.batch_size),
                             device.threads, total=len(loaded))
    measured = [MeasuredModel(trial=trial.number, label=trial.label,
                              predicted_ms={s: predict(candidate, profile, run.space, s) for s in profile.predicts},
                              measured_ms=timing)
                for trial, (candidate, _), timing in zip(trials, loaded, timings, strict=True)]
    members = measured[:len(plan.front)]
    baseline = measured[-1] if plan.float_baseline is not None else None
    statistic = profile.statistic
    members = [_flagged(m, members, baseline, statistic) for m in members]
    return Verification(run=run.name, date=utc_now(), device=f"{device.name} ({device.runtime})",
                        statistic=statistic, latency_label=run.latency_label, deployment=profile.deployment(),
                        timing=f"{TIMING}, {device.clock} clock", front=members, float_baseline=baseline,
                        kendall_tau=_rank_agreement(members, statistic))
