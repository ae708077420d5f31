"""The run folder's model: trials, their table, the one front, as every reader sees them."""

from __future__ import annotations

import shutil
from dataclasses import replace

from autocompress.report.analysis import analyse
from autocompress.run.config import Constraints
from autocompress.run.front import front
from autocompress.run.run import Run
from autocompress.run.table import csv_text, read_trials
from autocompress.run.trial import Kind, State, Trial
from autocompress.verify.measure import targets
from tests.report_run import finished_run  # noqa: F401


def _trial(number: int, accuracy: float, latency: float, state: State = State.COMPLETE, hash_: str | None = None,
           kind: Kind = Kind.SEARCH) -> Trial:
    return Trial(number=number, kind=kind, label="", state=state, accuracy=accuracy, latency_ms=latency,
                 size_kb=1.0, candidate_hash=hash_ or f"h{number}")


def test_front_keeps_non_dominated_feasible_trials_once_per_candidate():
    trials = [_trial(0, 0.9, 2.0), _trial(1, 0.8, 1.0), _trial(2, 0.7, 1.5), _trial(3, 0.95, 3.0),
              _trial(4, 0.8, 1.0, hash_="h1", kind=Kind.DUPLICATE), _trial(5, 0.99, 0.1, state=State.FAIL),
              _trial(6, 0.99, 0.2, state=State.REJECTED), _trial(7, 0.99, 0.05, state=State.RUNNING)]
    objectives = ["accuracy", "latency_ms"]
    assert [t.number for t in front(trials, objectives, Constraints())] == [0, 1, 3]
    assert [t.number for t in front(trials, objectives, Constraints(max_latency_ms=2.5))] == [0, 1]


def test_what_counts_against_trials():
    counted = {(kind, state): _trial(0, 0.5, 1.0, state=state, kind=kind).counts_against_trials
               for kind in Kind for state in State}
    assert {key for key, counts in counted.items() if counts} == {
        (Kind.SEARCH, state) for state in State if state is not State.PRUNED}


def test_the_table_reads_back_what_was_written(tmp_path):
    trials = [_trial(0, 0.9, 2.0), replace(_trial(1, 0.8, 1.25, state=State.PRUNED), accuracy=None, error="gate"),
              Trial.from_attrs(2, {"kind": "baseline", "label": "float"}, running=True)]
    path = tmp_path / "table.csv"
    path.write_text(csv_text(trials))
    again = read_trials(path, ["accuracy", "latency_ms"])
    assert again == trials
    assert csv_text(again) == path.read_text()  # a rewrite changes no byte


def test_report_verify_and_the_front_table_list_one_front_with_cached_duplicates(finished_run, tmp_path):  # noqa: F811
    """A candidate answered from the cache is on the front once: the first trial of it."""
    run = Run.open(shutil.copytree(finished_run, tmp_path / "run"))
    members = run.front()
    last = run.trials[-1].number
    duplicates = [replace(t, number=last + 1 + i, kind=Kind.DUPLICATE if t.kind is Kind.SEARCH else t.kind)
                  for i, t in enumerate(members)]
    for duplicate, source in zip(duplicates, members, strict=True):
        run.save_model(duplicate.number, {}, duplicate.candidate, cached_from=source.number)
    assert run.write_tables(run.trials + duplicates) == len(members)
    first = [t.number for t in members]
    listed = {"pareto table": [t.number for t in read_trials(run.files.pareto, run.objectives)],
              "run": [t.number for t in Run.open(run.path).front()],
              "verify": [t.number for t in targets(Run.open(run.path)).front],
              "report": sorted(int(n) for n in analyse(Run.open(run.path)).front["number"])}
    assert listed == {name: first for name in listed}
