"""Real searches through Ray on a tiny space: a 2-worker run with a failing trial and a
latency constraint, a driver killed with SIGKILL and resumed, a run joined to a Ray head.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import pytest
import ray
import torch
import yaml
from typer.testing import CliRunner

from autocompress.candidate import Candidate
from autocompress.cli import app
from autocompress.data import load_splits
from autocompress.hw.predict import predict
from autocompress.hw.profile import load_profile
from autocompress.models.family import family_of
from autocompress.models.mobilenet_space import StageArch
from autocompress.models.space_file import load_space
from autocompress.run.files import RunFiles
from autocompress.run.run import Run
from autocompress.search import gate
from autocompress.search.params import BASELINES as BASELINES_POLICY
from tests.conftest import bitfusion_profile
from tests.search_faults import fails

HERE = Path(__file__).parent
REPO = HERE.parent
SPACE = HERE / "spaces" / "search_tiny.yaml"
CLI = str(Path(sys.executable).parent / "autocompress")
BASELINES = 5


def _rows(folder: Path, table: str = "trials") -> list[dict]:
    """A table of the run folder (named as ``RunFiles`` names it) as rows of text."""
    with open(getattr(RunFiles(folder), table)) as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def profile(tmp_path_factory) -> Path:
    """The modelled bit-serial accelerator's profile of the tiny space (bits change latency)."""
    return bitfusion_profile(SPACE, tmp_path_factory.mktemp("profiles"))


@pytest.fixture(scope="module")
def max_latency_ms(profile) -> float:
    """A limit that the float base network breaks and its uniform 4-bit version meets."""
    space = load_space(SPACE)
    family = family_of(space)
    float_ms, four_bit_ms = (predict(family.uniform_candidate(family.largest_arch(), **BASELINES_POLICY[label]),
                                     load_profile(profile), space) for label in ("float", "uniform-4bit"))
    assert four_bit_ms < float_ms
    return (float_ms + four_bit_ms) / 2


def _search_args(results: Path, profile: Path, run: str, trials: int, *extra: str,
                 allocator: bool = False) -> list[str]:
    """A search's command line; ``allocator``: with the sensitivity-based allocator's baselines
    (they change the number of baselines, which most tests here count)."""
    return ["search", str(SPACE), "--profile", str(profile), "--trials", str(trials), "--workers", "2",
            "--run", run, "--results-dir", str(results), *extra,
            "--sensitivity-baselines" if allocator else "--no-sensitivity-baselines"]


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory, profile, max_latency_ms) -> Path:
    """12 search trials on 2 Ray workers where some candidates raise, under a latency limit."""
    results = tmp_path_factory.mktemp("results")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "tests.search_faults.install",
                          "env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        outcome = CliRunner().invoke(app, _search_args(results, profile, "faulty", 12, "--sampler", "nsga2",
                                                       "--finetune-epochs", "0",
                                                       "--max-latency-ms", str(max_latency_ms), allocator=True))
    finally:
        ray.shutdown()
    assert outcome.exit_code == 0, outcome.output
    return results / "faulty"


def test_every_trial_is_recorded_once_with_its_state(faulty_run):
    rows = _rows(faulty_run)
    labels = [r["label"] for r in rows if r["kind"] == "baseline"]
    assert labels[:BASELINES] == ["float", "uniform-8bit", "uniform-4bit", "channel-50", "rank-0.5"]
    allocated = labels[BASELINES:]  # the sensitivity-based allocator's, one per distinct candidate
    assert allocated and all(label.startswith("sensitivity-ilp@") for label in allocated)
    assert [int(r["number"]) for r in rows] == list(range(len(labels) + 12))
    assert sum(r["kind"] == "search" for r in rows) == 12
    assert {r["state"] for r in rows} <= {"COMPLETE", "FAIL", "REJECTED"}
    study = optuna.load_study(study_name="faulty", storage=RunFiles(faulty_run).storage_url)
    assert len(study.trials) == len(labels) + 12
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]


def test_the_allocators_candidates_are_labelled_in_the_run_and_its_report(faulty_run):
    rows = _rows(faulty_run)
    allocated = [r for r in rows if r["label"].startswith("sensitivity-ilp@")]
    assert all(r["state"] == "COMPLETE" for r in allocated)  # baselines: measured even over the limit
    table = json.loads(RunFiles(faulty_run).sensitivity.read_text())
    assert table["probes"] and table["seconds"] > 0 and table["reused"] == 0
    assert f"sensitivity: {len(table['probes'])} probes" in RunFiles(faulty_run).log.read_text()
    summary = RunFiles(faulty_run).report_summary.read_text()
    assert all(f"| {r['label']} | {r['number']} |" in summary for r in allocated)  # the baseline table
    report = RunFiles(faulty_run).report.read_text()
    assert all(f'"name":"baseline {r["label"]}"' in report for r in allocated)  # each its own legend entry


def test_a_trial_that_raises_is_recorded_and_the_search_goes_on(faulty_run):
    rows = _rows(faulty_run)
    failed = [r for r in rows if r["state"] == "FAIL"]
    assert failed, "the seed should sample at least one failing candidate"
    for row in failed:
        assert "FloatingPointError: training loss is nan" in row["error"]
        assert fails(Candidate.from_json(row["candidate"], StageArch))
    assert any(r["state"] == "COMPLETE" and r["kind"] == "search" for r in rows)


def test_the_front_and_baselines_alone_are_measured_on_the_test_split_which_the_sampler_never_sees(faulty_run):
    rows, front = _rows(faulty_run), _rows(faulty_run, "pareto")
    baselines = {r["number"] for r in rows if r["kind"] == "baseline" and r["state"] == "COMPLETE"}
    assert {r["number"] for r in rows if r["test_accuracy"]} == {r["number"] for r in front} | baselines
    assert all(0 <= float(r["test_accuracy"]) <= 1 for r in front)
    assert any(r["test_accuracy"] != r["accuracy"] for r in front)
    study = optuna.load_study(study_name="faulty", storage=RunFiles(faulty_run).storage_url)
    validation = {int(r["number"]): float(r["accuracy"]) for r in rows if r["state"] == "COMPLETE"}
    for trial in study.trials:  # all the sampler reads: validation accuracy, no test figure
        assert not any("test" in key for key in trial.user_attrs) and "test" not in str(study.user_attrs)
        if trial.number in validation:
            assert trial.values[0] == validation[trial.number]


def test_constraints_reject_before_training_and_hold_on_the_front(faulty_run, max_latency_ms):
    rows = _rows(faulty_run)
    rejected = [r for r in rows if r["state"] == "REJECTED"]
    assert rejected
    for row in rejected:
        assert float(row["latency_ms"]) > max_latency_ms and row["accuracy"] == "" and float(row["finetune_s"]) == 0
    front = _rows(faulty_run, "pareto")
    assert front
    assert all(r["state"] == "COMPLETE" and float(r["latency_ms"]) <= max_latency_ms for r in front)
    study = optuna.load_study(study_name="faulty", storage=RunFiles(faulty_run).storage_url)
    for trial in study.best_trials:
        assert trial.user_attrs["constraint:max_latency_ms"] <= 0


def test_run_folder_holds_config_inputs_and_loadable_models(faulty_run, max_latency_ms):
    config = json.loads(RunFiles(faulty_run).config.read_text())
    assert {"run", "space_path", "space", "profile_path", "profile_device", "objectives", "constraints", "sampler",
            "trials", "time_budget_s", "workers", "seed", "base_path", "created"} <= set(config)
    assert config["constraints"] == {"max_latency_ms": max_latency_ms, "max_size_kb": None}
    run = Run.open(faulty_run)
    splits = load_splits(run.space.data)  # the report's noise note reads these
    assert config["split_images"] == {"train": len(splits.train_y), "val": len(splits.val_y),
                                      "test": len(splits.test_y)}
    assert run.profile is not None
    log = run.files.log.read_text()
    assert "trial 0 COMPLETE" in log and "2 workers x 1 torch threads" in log
    with sqlite3.connect(run.files.database) as connection:  # fast commits, see RunFiles.open_storage
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    rows = _rows(faulty_run)
    for row in rows:
        assert run.model_path(int(row["number"])).is_file() == (row["state"] == "COMPLETE")
    search = next(r for r in rows if r["kind"] == "search" and r["state"] == "COMPLETE")
    for row in (rows[0], search):
        saved = torch.load(run.model_path(int(row["number"])), weights_only=True)
        assert saved["candidate"] == row["candidate"]
        family_of(run.space).build_compressed(family_of(run.space).parse_candidate(saved["candidate"])).load_state_dict(saved["state_dict"])


def _running_trials(database: Path) -> int:
    with closing(sqlite3.connect(database)) as connection:
        return connection.execute("SELECT COUNT(*) FROM trials WHERE state = 'RUNNING'").fetchone()[0]


def _live(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


@pytest.mark.parametrize("sampler", ["nsga2", "predictor"])
def test_driver_killed_mid_run_resumes_without_losing_or_repeating_a_trial(tmp_path, profile, sampler):
    folder = tmp_path / "killed"
    # 4 fine-tune epochs, not the tiny space's 1: trials of a fifth of a second left the driver
    # between two trials at most checks, and once (CI, 2026-11-30) finished the run before a
    # check found one in flight
    driver = subprocess.Popen([CLI, *_search_args(tmp_path, profile, "killed", 10, "--sampler", sampler,
                                                  "--finetune-epochs", "4")],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        done = [r for r in _rows(folder) if r["state"] == "COMPLETE"] if RunFiles(folder).trials.exists() else []
        if len(done) >= 7:
            # The driver is the storage's only writer: stopped, its storage cannot change between
            # the check and the kill. Kill only while a trial is in flight (not between two trials).
            driver.send_signal(signal.SIGSTOP)
            if _running_trials(RunFiles(folder).database):
                break
            driver.send_signal(signal.SIGCONT)
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    storage = RunFiles(folder).storage_url
    before = {t.number: t for t in optuna.load_study(study_name="killed", storage=storage).trials}
    finished_before = {n: t.user_attrs["finished_at"] for n, t in before.items() if t.state.is_finished()}
    assert len(finished_before) >= 7
    assert any(t.state == optuna.trial.TrialState.RUNNING for t in before.values())
    leftovers = [int(pid) for pid in json.loads(RunFiles(folder).ray_processes.read_text())["processes"]]

    resumed = subprocess.run([CLI, "search", "--run", "killed", "--resume", "--results-dir", str(tmp_path)],
                             cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert not _live(leftovers)
    after = optuna.load_study(study_name="killed", storage=storage).trials
    pruned = sum(t.state == optuna.trial.TrialState.PRUNED for t in after)  # by the fine-tune gate: not counted
    assert len(after) == BASELINES + 10 + pruned
    assert all(t.state.is_finished() for t in after)
    for number, finished_at in finished_before.items():
        assert after[number].user_attrs["finished_at"] == finished_at  # not run again
    rows = _rows(folder)
    assert [int(r["number"]) for r in rows] == list(range(BASELINES + 10 + pruned))
    assert sum(r["kind"] == "search" and r["state"] != "PRUNED" for r in rows) == 10
    assert sum(r["kind"] == "baseline" for r in rows) == BASELINES
    assert all(RunFiles(folder).model_path(int(r["number"])).is_file() for r in rows if r["state"] == "COMPLETE")
    assert all(r["test_accuracy"] for r in _rows(folder, "pareto"))  # the resumed run's front, measured on test
    baselines = [r for r in rows if r["kind"] == "baseline" and r["state"] == "COMPLETE"]
    assert baselines and all(r["test_accuracy"] for r in baselines)  # and its baselines
    if sampler == "predictor":  # its proposals were screened, and never repeat an evaluated candidate
        assert RunFiles(folder).predictor_model("predictor").is_file() and RunFiles(folder).screened.is_file()
        assert "<h2>Accuracy predictor</h2>" in RunFiles(folder).report.read_text()
        assert "before_evaluation.kendall_tau" in RunFiles(folder).report_summary.read_text()
        hashes = [r["candidate_hash"] for r in rows if r["kind"] == "search"]
        assert len(set(hashes)) == len(hashes)
        # the predictors' quality at proposal covers every trial that finished, the last ones included
        summary = json.loads(RunFiles(folder).predictor_summary.read_text())
        complete = [r for r in rows if r["kind"] == "search" and r["state"] == "COMPLETE"]
        assert summary["before_evaluation"]["trials"] == sum(bool(r["predicted_accuracy"]) for r in complete)
        gated = sum(bool(r["predicted_accuracy_cheap"]) for r in complete)
        before_finetune = summary["cheap_fidelity"]["before_finetune"]  # None under two trials
        assert (before_finetune["trials"] if before_finetune else 0) == (gated if gated > 1 else 0)
        # four fine-tune epochs: every fine-tune was measured after its first, and gated there too
        assert all(r["accuracy_first_epoch"] for r in rows if r["state"] == "COMPLETE")
        judged = sum(bool(r["predicted_accuracy_first_epoch"]) for r in complete)
        before_last = summary["first_epoch"]["before_last_epochs"]
        assert (before_last["trials"] if before_last else 0) == (judged if judged > 1 else 0)
        assert summary["first_epoch"]["pruned_trials"] + summary["cheap_fidelity"]["pruned_trials"] == pruned


def test_a_search_whose_every_trial_fails_stops_after_the_baselines(tmp_path, profile):
    """Not "0 complete" and exit 0 after the whole budget: one line naming the first error, exit 1."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"worker_process_setup_hook": "tests.search_faults.install_everywhere",
                          "env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        outcome = CliRunner().invoke(app, _search_args(tmp_path, profile, "broken", 50, "--finetune-epochs", "0"))
    finally:
        ray.shutdown()
    assert outcome.exit_code == 1, outcome.output
    files = RunFiles(tmp_path / "broken")
    line = next(text for text in outcome.stderr.splitlines() if "every trial failed" in text)
    assert "trial 0: RuntimeError: this model cannot be compressed" in line and str(files.log) in line
    rows = _rows(tmp_path / "broken")
    finished = [r for r in rows if r["state"] != "RUNNING"]
    assert {r["state"] for r in finished} == {"FAIL"} and len(rows) < BASELINES + 5  # not 50 trials burnt
    assert [r["kind"] for r in rows[:BASELINES]] == ["baseline"] * BASELINES


def test_a_duplicate_candidate_does_not_use_up_a_search_trial(tmp_path, profile):
    """A space of 8 distinct candidates, one of them the float baseline: 7 search trials are
    7 new candidates, however many repeats the random sampler proposes on the way."""
    data = yaml.safe_load(SPACE.read_text())
    data["choices"]["layer"] = {"weight_bits": [32], "activation_bits": [32], "sparsity_kind": ["channel"],
                                "sparsity": [0.0], "rank_ratio": [1.0], "first_last_min_bits": None}
    space = tmp_path / "eight.yaml"
    space.write_text(yaml.safe_dump(data))
    outcome = subprocess.run([CLI, "search", str(space), "--profile", str(profile), "--trials", "7", "--workers", "1",
                              "--sampler", "random", "--finetune-epochs", "0", "--run", "eight",
                              "--no-sensitivity-baselines",
                              "--results-dir", str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                             timeout=240)
    assert outcome.returncode == 0, outcome.stderr[-2000:]
    rows = _rows(tmp_path / "eight")
    search = [r for r in rows if r["kind"] == "search"]
    baseline = [r for r in rows if r["kind"] == "baseline"]
    assert len(search) == 7 and len(baseline) == 1
    assert len({r["candidate_hash"] for r in search + baseline}) == 8
    duplicates = [r for r in rows if r["kind"] == "duplicate"]
    assert duplicates, "the random sampler should repeat a candidate of so small a space"
    assert all(float(r["duration_s"]) == 0.0 for r in duplicates)  # answered from the cache, not re-trained


def test_trials_pruned_by_the_fine_tune_gate_do_not_use_up_the_budget(tmp_path, profile, monkeypatch):
    """With a front no candidate can beat, the gate prunes every gated proposal after its cheap
    fidelity; still 4 search trials are fine-tuned, and never more than 3 are pruned in a row."""
    monkeypatch.setattr(gate, "required_accuracy", lambda *_: 2.0)
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        outcome = CliRunner().invoke(app, _search_args(tmp_path, profile, "gated", 4, "--finetune-epochs", "0"))
    finally:
        ray.shutdown()
    assert outcome.exit_code == 0, outcome.output
    rows = [r for r in _rows(tmp_path / "gated") if r["kind"] == "search"]
    pruned = [r for r in rows if r["state"] == "PRUNED"]
    assert sum(r["state"] == "COMPLETE" for r in rows) == 4 and pruned
    assert "pruned by the fine-tune gate" in outcome.output
    states = "".join("P" if r["state"] == "PRUNED" else "C" for r in rows)
    assert "PPPP" not in states
    for row in pruned:
        assert row["accuracy"] == "" and 0 <= float(row["accuracy_before"]) <= 1 and row["predicted_accuracy_cheap"]
        assert "not fine-tuned: cheap accuracy" in row["error"] and float(row["finetune_s"]) == 0
        assert not RunFiles(tmp_path / "gated").model_path(int(row["number"])).exists()
    summary = json.loads(RunFiles(tmp_path / "gated").predictor_summary.read_text())
    assert summary["cheap_fidelity"]["pruned_trials"] == len(pruned)


def test_a_run_learns_from_an_earlier_run_on_the_same_base_and_keeps_what_it_learnt(faulty_run, profile):
    """The predictor of a run given ``--learn-from`` is fitted on the earlier run's fine-tuned
    trials too; they are frozen into the run folder, so a resume learns from the same trials
    after the earlier folder is gone."""
    results = faulty_run.parent
    earlier = results / "earlier"
    shutil.copytree(faulty_run, earlier)
    learnt = [r for r in _rows(earlier) if r["state"] == "COMPLETE" and r["kind"] in ("search", "baseline")]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    try:
        first = CliRunner().invoke(app, _search_args(results, profile, "learner", 2, "--finetune-epochs", "0",
                                                     "--learn-from", str(earlier), allocator=True))
        assert first.exit_code == 0, first.output
        folder = results / "learner"
        sensitivity = json.loads(RunFiles(folder).sensitivity.read_text())  # the earlier run's probes, same base
        assert sensitivity["reused"] == len(sensitivity["probes"]) and sensitivity["probes"] == json.loads(
            RunFiles(earlier).sensitivity.read_text())["probes"]
        prior = _rows(folder, "prior_trials")
        assert {(int(r["number"]), float(r["accuracy"])) for r in prior} == {
            (int(r["number"]), float(r["accuracy"])) for r in learnt}
        assert {r["run"] for r in prior} == {"earlier"}
        assert Run.open(folder).config.learn_from == [str(earlier)]
        summary = json.loads(RunFiles(folder).predictor_summary.read_text())
        assert f"{len(learnt)} trials of earlier runs" in summary["model"]
        frozen = RunFiles(folder).prior_trials.read_bytes()
        shutil.rmtree(earlier)
        resumed = CliRunner().invoke(app, ["search", "--run", "learner", "--resume", "--trials", "3",
                                           "--results-dir", str(results)])
    finally:
        ray.shutdown()
    assert resumed.exit_code == 0, resumed.output
    assert RunFiles(folder).prior_trials.read_bytes() == frozen
    assert sum(r["kind"] == "search" and r["state"] == "COMPLETE" for r in _rows(folder)) == 3


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_search_joins_a_ray_head_started_separately(tmp_path, profile):
    port = _free_port()
    # a head started by 'ray start' requires token authentication from drivers that join it
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_AUTH_MODE": "token"}
    # --block keeps the head's processes tied to this one process, so stopping it stops
    # exactly this cluster (``ray stop`` would stop every Ray cluster of the user)
    head = subprocess.Popen([str(Path(sys.executable).parent / "ray"), "start", "--head", "--block",
                             "--port", str(port), "--num-cpus", "2",
                             "--include-dashboard=false"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(8)
        assert head.poll() is None
        joined = subprocess.run([CLI, *_search_args(tmp_path, profile, "joined", 4, "--finetune-epochs", "0",
                                                    "--objective", "size", "--address", f"127.0.0.1:{port}")],
                                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
        assert joined.returncode == 0, joined.stderr[-2000:]
    finally:
        head.terminate()
        head.wait(timeout=60)
    rows = _rows(tmp_path / "joined")
    assert len(rows) == BASELINES + 4 and all(r["state"] == "COMPLETE" for r in rows)
    study = optuna.load_study(study_name="joined", storage=RunFiles(tmp_path / "joined").storage_url)
    assert study.metric_names == ["accuracy", "latency_ms", "size_kb"]
