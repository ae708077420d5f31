"""What a report shows, computed once from a run: front, hypervolume, baselines, policies."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from autocompress.models.family import family_of
from autocompress.report.pareto import (
    front,
    hypervolume_history,
    minimisation_points,
    reference_scale,
)
from autocompress.report.policy import policy_frame
from autocompress.report.run import Run


@dataclass(frozen=True)
class Analysis:
    run: Run
    front: pd.DataFrame
    hypervolume: pd.DataFrame
    policies: pd.DataFrame
    baselines: pd.DataFrame

    @property
    def final_hypervolume(self) -> float:
        return float(self.hypervolume["hypervolume"].iloc[-1]) if len(self.hypervolume) else 0.0


def _hypervolume(run: Run) -> pd.DataFrame:
    scale = reference_scale([run.complete], run.objectives)
    feasible = run.feasible.sort_values("number")
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


def _baselines(run: Run, members: pd.DataFrame) -> pd.DataFrame:
    table = run.complete[run.complete["kind"] == "baseline"].copy()
    table["dominated_by"] = [_dominated_by(row, members, run.objectives) for _, row in table.iterrows()]
    return table


def analyse(run: Run) -> Analysis:
    """Everything a report shows about ``run``, from the trials finished so far."""
    members = front(run.feasible, run.objectives)
    candidates = {int(row.number): family_of(run.space).parse_candidate(row.candidate) for row in members.itertuples()}
    return Analysis(run, members, _hypervolume(run), policy_frame(candidates, run.space),
                    _baselines(run, members))

