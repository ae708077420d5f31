"""The search loop: Optuna asks and tells in this process, Ray actors only evaluate.

Why this design: the driver is the only writer of the Optuna storage, and a trial's
outcome reaches the storage in the same step that makes it COMPLETE/FAIL. So after a
crash or ``kill -9`` at any moment, every trial that finished is in the storage exactly
once, and every trial still RUNNING there is one whose outcome never arrived: the next
driver re-runs it under its own number with its own stored parameters (a trial killed
half-way through sampling gets its missing parameters now). Nothing is lost, nothing runs
twice, and the number of search trials is exactly the number asked.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from collections import deque
from dataclasses import dataclass, replace
from pathlib import Path

import optuna
import ray

from autocompress.hw.describe import deployment_line, prediction_line
from autocompress.hw.profile import HardwareProfile
from autocompress.progress import Progress
from autocompress.run.front import front
from autocompress.run.run import Run
from autocompress.run.status import Session, Standing
from autocompress.run.trial import Kind, State, Trial
from autocompress.search.baselines import enqueue_allocations, enqueue_uniform
from autocompress.search.params import suggest_candidate
from autocompress.search.prior import PriorTrials
from autocompress.search.record import Outcome, now
from autocompress.search.samplers import SamplerContext, make_sampler
from autocompress.search.stop import StopRequest
from autocompress.search.workers import Workers
from autocompress.tasks import Task

log = logging.getLogger(__name__)
MAX_DUPLICATES_IN_A_ROW = 200
"""Proposals in a row that were all evaluated before: the sampler has nothing new to offer."""
TABLE_INTERVAL_S = 2.0
"""At most one rewrite of the trial table and the front per interval (and one at the end)."""


@dataclass
class Summary:
    run: str
    folder: Path
    complete: int
    failed: int
    rejected: int
    pruned: int
    front: int
    front_table: Path
    wall_s: float
    evaluation_s: float
    interrupted: bool
    first_failure: Trial | None = None
    """Set when the search stopped because every trial failed (``SearchDriver.hopeless``)."""


class SearchDriver:
    def __init__(self, run: Run, profile: HardwareProfile, task: Task, prior: PriorTrials | None = None) -> None:
        self.run_folder, self.config, self.space, self.profile = run, run.config, run.space, profile
        self.task = task
        config = self.config
        self.study = optuna.create_study(study_name=config.run, storage=run.files.open_storage(),
                                         directions=config.directions(), load_if_exists=True)
        if not self.study.metric_names:
            with warnings.catch_warnings():  # experimental since Optuna 3.2, still there in 5
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.study.set_metric_names(list(config.objectives))
        existing = self.study.get_trials(deepcopy=False)
        context = SamplerContext(self.space, profile, config.seed, config.constraints.max_latency_ms, prior)
        self.sampler = make_sampler(config.sampler, config.seed + len(existing), config.trials, context)
        self.study.sampler = self.sampler.optuna
        self.rows = {t.number: Trial.from_attrs(t.number, t.user_attrs, t.state == optuna.trial.TrialState.RUNNING)
                     for t in existing if t.state != optuna.trial.TrialState.WAITING}
        self.cache = {t.user_attrs["candidate_hash"]: (t.number, Outcome.stored(t.user_attrs))
                      for t in existing if t.user_attrs.get("state") in (State.COMPLETE, State.REJECTED)
                      and t.state == optuna.trial.TrialState.COMPLETE}
        self.stale = deque(t for t in existing if t.state == optuna.trial.TrialState.RUNNING)
        self.waiting = enqueue_uniform(self.study, self.space, existing)
        self.in_flight: dict[ray.ObjectRef, tuple[optuna.Trial, object]] = {}
        self.evaluation_s = 0.0
        self.tables_written = 0.0
        self.front_size = self._front()
        self.progress = Progress(config.run, config.trials, "search trials", enabled=False)  # run() shows one
        self.session: Session | None = None
        self.duplicates_in_a_row = 0
        self.exhausted_logged = False

    # -- setup ------------------------------------------------------------------------------
    # -- bookkeeping --------------------------------------------------------------------------
    def _count(self, state: State) -> int:
        return sum(trial.state is state for trial in self.rows.values())

    def _front(self) -> int:
        return len(front(list(self.rows.values()), self.config.objectives, self.config.constraints))

    def _write_tables(self, force: bool = False) -> None:
        if force or time.monotonic() - self.tables_written >= TABLE_INTERVAL_S:
            self.front_size = self.run_folder.write_tables(list(self.rows.values()))
            self.tables_written = time.monotonic()

    # -- the loop -------------------------------------------------------------------------------
    def _wants_search_trial(self, deadline: float | None) -> bool:
        """Whether to ask for another search trial (``Trial.counts_against_trials`` says what uses
        up ``--trials``)."""
        if not self.sampler.proposes_search_trials or deadline is not None and time.monotonic() >= deadline:
            return False
        if self._first_of_only_failures() is not None:  # until a trial works, a baseline still running decides
            return False
        if self.duplicates_in_a_row >= MAX_DUPLICATES_IN_A_ROW:
            if not self.exhausted_logged:
                log.warning("the last %d proposals were all evaluated before: stopping the search",
                            self.duplicates_in_a_row)
                self.exhausted_logged = True
            return False
        return self.config.trials is None or sum(
            trial.counts_against_trials for trial in self.rows.values()) < self.config.trials

    def _next_trial(self) -> optuna.Trial:
        if self.stale:
            frozen = self.stale.popleft()
            log.info("trial %d was running when the previous driver stopped: running it again", frozen.number)
            trial = optuna.Trial(self.study, frozen._trial_id)  # no public handle on a RUNNING trial
        else:
            trial = self.study.ask()  # queued baselines come first
            self.waiting -= trial.user_attrs.get("kind") == Kind.BASELINE
        if "kind" not in trial.user_attrs:
            trial.set_user_attr("kind", Kind.SEARCH)
            trial.set_user_attr("label", "")
        return trial

    def _keep_sampler_output(self, trial: optuna.Trial) -> None:
        """What the sampler wants kept since it last proposed or was told: the predictions it
        proposed ``trial`` with, and its files in the run folder."""
        output = self.sampler.take_output()
        if output is not None:
            for key, value in output.trial_attrs.items():
                trial.set_user_attr(key, value)
            self.run_folder.keep_sampler_output(output)

    def _dispatch(self, trial: optuna.Trial) -> None:
        candidate = suggest_candidate(self.space, trial.suggest_categorical)  # the sampler proposes here
        self._keep_sampler_output(trial)
        if trial.user_attrs.get("candidate_hash") != candidate.hash:
            trial.set_user_attr("candidate", candidate.to_json())
            trial.set_user_attr("candidate_hash", candidate.hash)
        started = now()
        trial.set_user_attr("started_at", started)
        self.rows[trial.number] = Trial.from_attrs(trial.number, trial.user_attrs, running=True)
        baseline = trial.user_attrs["kind"] == Kind.BASELINE
        if candidate.hash in self.cache:
            number, outcome = self.cache[candidate.hash]
            log.info("trial %d: candidate %s already evaluated in trial %d", trial.number, candidate.hash, number)
            trial.set_user_attr("cached_from", number)
            if not baseline:
                trial.set_user_attr("kind", Kind.DUPLICATE)
                self.duplicates_in_a_row += 1
            outcome = replace(outcome, started_at=started, finished_at=now(), duration_s=0.0)
            reason = self.config.constraints.rejection(outcome.latency_ms, outcome.size_kb)
            if outcome.state is State.COMPLETE and reason and not baseline:  # the source was a baseline
                outcome = Outcome(State.REJECTED, outcome.latency_ms, outcome.size_kb, error=reason,
                                  started_at=outcome.started_at, finished_at=outcome.finished_at)
            self._finish(trial, outcome, source=number)
            return
        self.duplicates_in_a_row = 0
        actor = self.workers.idle.pop()
        gate = self.sampler.finetune_gate(trial.number)
        self.in_flight[actor.evaluate.remote(candidate.to_json(), not baseline, gate)] = (trial, actor)

    def _finish(self, trial: optuna.Trial, outcome: Outcome, source: int | None = None) -> None:
        """Store the outcome: model file first, then attributes, then the final state."""
        number = trial.number
        if outcome.state is State.COMPLETE:
            self.run_folder.save_model(number, outcome.state_dict, trial.user_attrs["candidate"], cached_from=source)
        for key, value in outcome.attrs().items():
            trial.set_user_attr(key, value)
        if outcome.state is not State.FAIL:
            for key, value in self.config.constraints.violations(outcome.latency_ms, outcome.size_kb).items():
                with warnings.catch_warnings():  # set before a crash: Optuna keeps the (same) first value
                    warnings.simplefilter("ignore")
                    trial.set_constraint(key, value)
                trial.set_user_attr(f"constraint:{key}", value)
        values = outcome.values(self.config.objectives) if outcome.state in (State.COMPLETE, State.REJECTED) else None
        self.study.tell(trial, values, state=outcome.optuna_state)
        self._keep_sampler_output(trial)
        finished = self.rows[number] = Trial.from_attrs(number, trial.user_attrs, running=False)
        if outcome.state in (State.COMPLETE, State.REJECTED) and source is None:
            self.cache.setdefault(finished.candidate_hash, (number, replace(outcome, state_dict=None)))
        self.evaluation_s += outcome.duration_s
        log.info("trial %d %s: %s", number, outcome.state,
                 outcome.error or {self._named(k): finished.row()[k] for k in self.config.objectives})
        self._write_tables()
        if finished.counts_against_trials:
            self.progress.advance()
        if finished.kind is not Kind.DUPLICATE:
            self._show_progress(milestone=True)

    def _first_of_only_failures(self) -> Trial | None:
        """The first failed trial if every trial finished so far failed, else None."""
        finished = [t for t in self.rows.values() if t.finished]
        if not finished or any(t.state is not State.FAIL for t in finished):
            return None
        return min(finished, key=lambda t: t.number)

    def hopeless(self) -> Trial | None:
        """The first failed trial once every trial finished so far failed and no baseline is left to
        run, else None: the baselines are the base network at uniform settings, so when all of them
        fail (a model or data the pipeline cannot handle) the search trials would only fail too."""
        baselines_left = self.waiting or any(t.kind is Kind.BASELINE and not t.finished for t in self.rows.values())
        return None if baselines_left else self._first_of_only_failures()

    def _show_progress(self, milestone: bool = False) -> None:
        """The bar's figures, and a status line for each finished trial and every minute."""
        if self.session is None or not (milestone or self.progress.bar_shown or self.progress.line_due):
            return
        standing = Standing.of(self.rows.values(), self.front_size, self.config.constraints)
        self.progress.show(milestone, standing.left_s(self.session), **standing.figures(self.config.metric))

    def _collect(self, timeout: float) -> None:
        """Finish the trials whose results arrived within ``timeout``."""
        ready, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=timeout)
        for ref in ready:
            trial, actor = self.in_flight.pop(ref)
            try:
                outcome = ray.get(ref)
                self.workers.idle.append(actor)
            except ray.exceptions.RayError as error:
                outcome = Outcome(State.FAIL, error=f"worker died: {type(error).__name__}: {error}".splitlines()[0],
                                  finished_at=now())
                self.workers.idle.append(self.workers.spawn())
            self._finish(trial, outcome)

    def _named(self, column: str) -> str:
        """A column as the log shows it: the latency named by its statistic and batch."""
        return f"latency_ms ({self.profile.latency_label()})" if column == "latency_ms" else column

    def run(self, address: str | None) -> Summary:
        config = self.config
        start = time.monotonic()
        log.info("%s; %s", prediction_line(self.profile), deployment_line(self.profile))
        deadline = start + config.time_budget_s if config.time_budget_s else None
        done = sum(trial.finished and trial.counts_against_trials for trial in self.rows.values())
        self.session = Session(pid=os.getpid(), started_at=time.time(), trials=config.trials,
                               time_budget_s=config.time_budget_s, done_at_start=done)
        self.run_folder.write_session(self.session)
        self.workers = Workers(self.run_folder, self.profile, self.task, address)
        self.progress = Progress(config.run, config.trials, "search trials", initial=done)
        self._show_progress(milestone=True)
        stop = StopRequest()
        try:
            with stop.installed():
                if config.sensitivity_baselines:  # within the budget: a search pays for its baselines
                    self.waiting += enqueue_allocations(self.study, self.run_folder, self.profile, self.workers.probe)
                while not stop.requested:
                    while self.workers.idle and (self.stale or self.waiting or self._wants_search_trial(deadline)):
                        self._dispatch(self._next_trial())
                    if not self.in_flight:
                        break
                    self._collect(timeout=1.0)
                    self._show_progress()
                    if self.hopeless() is not None:
                        log.error("every trial so far failed, the baselines included: stopping the search")
                        break
        except KeyboardInterrupt:
            stop.requested = True
        finally:
            interrupted = stop.requested
            if self.in_flight:
                log.warning("stopped: %d trials in flight stay RUNNING and re-run on --resume", len(self.in_flight))
                for _, actor in self.in_flight.values():
                    ray.kill(actor)
            self._write_tables(force=True)
            self._show_progress()
            self.progress.close()
            self.workers.stop()
        return Summary(config.run, self.run_folder.path, self._count(State.COMPLETE), self._count(State.FAIL),
                       self._count(State.REJECTED), self._count(State.PRUNED), self._front(),
                       self.run_folder.files.pareto,
                       time.monotonic() - start, self.evaluation_s, interrupted, self.hopeless())
