"""``autocompress status RUN``: where a run stands, from any shell, while it runs or after."""

from __future__ import annotations

import time
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import typer

from autocompress.progress import duration
from autocompress.run.status import Standing
from autocompress.run.trial import State

if TYPE_CHECKING:
    from autocompress.run.run import Run


def status_command(run: Annotated[str, typer.Argument(help="run folder, or a run name under results/")]) -> None:
    """Print a run's trials by state, its front, elapsed time and time left, and whether its
    driver is alive."""
    from autocompress.run.run import Run, resolve  # torch: imported when the command runs

    setting_up = Run.being_set_up(run)
    if setting_up is not None:
        path, pid = setting_up
        typer.echo(f"{path}: being set up by the driver (pid {pid}): checking the inputs and training the base "
                   f"network; its progress: {Run.log_of(path)}")
        return
    opened = Run.open(resolve(run))
    for line in status_lines(opened, time.time()):
        typer.echo(line)


def status_lines(run: Run, now: float) -> list[str]:
    """What ``status`` prints of ``run`` at ``now`` (seconds since the epoch)."""
    trials = run.trials
    standing = Standing.of(trials, len(run.front()), run.config.constraints)
    pid, session = run.driver_pid, run.session
    driver = f"driver running (pid {pid})" if pid is not None else "driver not running"
    budget = f"/{run.config.trials}" if run.config.trials else ""
    states = ", ".join(f"{state} {standing.states.get(state, 0)}" for state in State)
    lines = [f"{run.path}: {driver}",
             f"trials: {standing.done}{budget} search trials done, {standing.baselines} baselines; {states}",
             f"front: {standing.front} trials, best {run.config.metric} "
             + ("-" if standing.best_score is None else f"{standing.best_score:.4f}")]
    if session is None:
        return lines + ["time: the search has not started yet"]
    if pid is not None:
        left = standing.left_s(session, now)
        return lines + [f"time: {duration(now - session.started_at)} elapsed, "
                        + ("time left not known yet" if left is None else f"about {duration(left)} left")]
    ended = max((datetime.fromisoformat(t.finished_at).timestamp() for t in trials if t.finished_at),
                default=session.started_at)
    return lines + [f"time: its last search ran {duration(ended - session.started_at)}"]
