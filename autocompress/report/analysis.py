"""What a report shows, computed once from a run: its trials as tables, the front,
hypervolume, baselines and policies."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from autocompress.models.family import family_of
from autocompress.report.policy import policy_frame
from autocompress.run.front import MAXIMISED, hypervolume_history, minimisation_points, reference_scale
from autocompress.run.run import Run
from autocompress.run.trial import COLUMNS, FLOAT_COLUMNS, Trial


def trial_table(trials: list[Trial]) -> pd.DataFrame:
    """``trials`` as a table, one row per trial: what was not measured is NaN."""
    table = pd.DataFrame([asdict(trial) for trial in trials], columns=COLUMNS)
    for column in FLOAT_COLUMNS:
        table[column] = pd.to_numeric(table[column], errors="coerce")
    for column in ("kind", "state"):
        table[column] = table[column].astype(str)
    return table


@dataclass(frozen=True)
class Analysis:
    run: Run
    trials: pd.DataFrame
    complete: pd.DataFrame
    """Finished trials with every objective measured."""
    front: pd.DataFrame
    """The run's front (``Run.front``), by its first minimised objective."""
    hypervolume: pd.DataFrame
    policies: pd.DataFrame
    baselines: pd.DataFrame

    @property
    def metric(self) -> str:
        """The name of the run's score (``accuracy``, or a custom task's, e.g. ``IoU``)."""
        return self.run.config.metric

    @property
    def final_hypervolume(self) -> float:
        return float(self.hypervolume["hypervolume"].iloc[-1]) if len(self.hypervolume) else 0.0


def _hypervolume(run: Run, complete: pd.DataFrame) -> pd.DataFrame:
    scale = reference_scale([complete], run.objectives)
    feasible = trial_table(run.feasible)
    values = hypervolume_history(minimisation_points(feasible, run.objectives, scale))
    return pd.DataFrame({"number": feasible["number"].to_numpy(), "hypervolume": values})


def _dominated_by(row: pd.Series, members: pd.DataFrame, objectives: list[str]) -> str:
    """Trial numbers of the front's members that dominate baseline ``row``."""
    if members.empty:
        return ""
    points = minimisation_points(members, objectives)
    point = minimisation_points(row.to_frame().T, objectives)[0]
    better = (points <= point).all(axis=1) & (points < point).any(axis=1)
    return ", ".join(str(int(n)) for n in members["number"][better])


def _baselines(run: Run, complete: pd.DataFrame, members: pd.DataFrame) -> pd.DataFrame:
    table = complete[complete["kind"] == "baseline"].copy()
    table["dominated_by"] = [_dominated_by(row, members, run.objectives) for _, row in table.iterrows()]
    return table


def analyse(run: Run) -> Analysis:
    """Everything a report shows about ``run``, from the trials finished so far."""
    complete = trial_table(run.complete)
    front = run.front()
    order = [name for name in run.objectives if name not in MAXIMISED] or run.objectives
    members = trial_table(front).sort_values(order)
    candidates = {trial.number: family_of(run.space).parse_candidate(trial.candidate) for trial in front}
    return Analysis(run, trial_table(run.trials), complete, members, _hypervolume(run, complete),
                    policy_frame(candidates, run.space), _baselines(run, complete, members))
