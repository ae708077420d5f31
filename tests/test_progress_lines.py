"""Progress where no terminal is: plain lines in a redirected log and in search.log, and
``autocompress status`` from another shell."""

from __future__ import annotations

import itertools
import logging
import os
import re
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from autocompress import progress
from autocompress.cli import app
from autocompress.progress import Progress
from autocompress.run.command import status_lines
from autocompress.run.files import RunFiles
from autocompress.run.run import Run

HERE = Path(__file__).parent
SPACE = HERE / "spaces" / "search_tiny.yaml"
CLI = str(Path(sys.executable).parent / "autocompress")
LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) (.*)$")
FIRST_LINE_WITHIN_S = 10
TRIALS = 2


@pytest.fixture(scope="module")
def logged_search(tmp_path_factory) -> tuple[float, str, Path]:
    """``autocompress search ... > log 2>&1`` on the tiny space (2 base epochs, 2 search trials
    without fine-tuning): (when it started, the log, the run folder)."""
    folder = tmp_path_factory.mktemp("logged")
    space = yaml.safe_load(SPACE.read_text())
    space["training"]["base_epochs"] = 2
    (folder / "space.yaml").write_text(yaml.safe_dump(space))
    made = CliRunner().invoke(app, ["profile", str(folder / "space.yaml"), "--runtime", "bitfusion-model",
                                    "--out", str(folder / "profile.json")])
    assert made.exit_code == 0, made.output
    environment = {k: v for k, v in os.environ.items() if k != "AUTOCOMPRESS_PROGRESS"}
    command = (f"{CLI} search space.yaml --profile profile.json --trials {TRIALS} --workers 1 "
               "--finetune-epochs 0 --no-sensitivity-baselines --run logged --results-dir results > log 2>&1")
    started = time.time()
    subprocess.run(command, shell=True, cwd=folder, env=environment, check=True, timeout=600)
    return started, (folder / "log").read_text(), folder / "results" / "logged"


def _lines(text: str) -> list[tuple[float, str]]:
    """The timestamped progress lines of a log: (seconds since the epoch, message)."""
    found = (LINE.match(line) for line in text.splitlines())
    return [(datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").timestamp(), m[2]) for m in found if m]


def test_a_redirected_search_logs_a_line_at_once_and_every_minute_through_base_and_search(logged_search):
    started, log, _ = logged_search
    lines = _lines(log)
    assert lines, log
    assert lines[0][0] - started <= FIRST_LINE_WITHIN_S, (started, lines[0])
    times = [started] + [when for when, _ in lines]
    assert max(b - a for a, b in itertools.pairwise(times)) <= progress.LINE_INTERVAL_S, log
    messages = [message for _, message in lines]
    epochs = [m for m in messages if m.startswith("base network (cpu): ")]
    assert [re.search(r"epoch (\d/\d)", m)[1] for m in epochs] == ["1/2", "2/2"]
    assert all(re.search(r"loss \d+\.\d+, accuracy \d\.\d+, \w+ left$", m) for m in epochs), epochs
    status = [m for m in messages if m.startswith("logged: ")]
    assert messages.index(epochs[-1]) < messages.index(status[0])
    baselines = 5
    assert len(status) >= 1 + baselines + TRIALS  # the start, then each finished trial
    assert status[-1].startswith(f"logged: {TRIALS}/{TRIALS} search trials, baselines {baselines}, ")
    assert re.search(r"front \d+, best accuracy \d\.\d{4}, 0s left$", status[-1]), status[-1]
    assert not re.search(r"\d+%\|", log), "no progress bar where no terminal is"


def test_search_log_gets_the_same_lines_from_the_setup_on(logged_search):
    _, log, run = logged_search
    messages = [message for _, message in _lines(log)]
    setup = next(i for i, m in enumerate(messages) if "setting up" in m)
    in_file = RunFiles(run).log.read_text()
    for message in messages[setup:]:
        assert f"INFO autocompress.progress: {message}" in in_file


def test_status_of_a_finished_run(logged_search):
    _, _, run = logged_search
    shown = CliRunner().invoke(app, ["status", str(run)])
    assert shown.exit_code == 0, shown.output
    opened = Run.open(run)
    assert shown.output.splitlines()[0] == f"{run}: driver not running"
    assert f"{TRIALS}/{TRIALS} search trials done, 5 baselines;" in shown.output
    assert f"COMPLETE {TRIALS + 5}, REJECTED 0, PRUNED 0, FAIL 0, RUNNING 0" in shown.output
    best = max(t.accuracy for t in opened.front())
    assert f"front: {len(opened.front())} trials, best accuracy {best:.4f}" in shown.output
    assert re.search(r"time: its last search ran \w+", shown.output)


def test_status_says_the_driver_is_alive_while_it_holds_the_lock(logged_search):
    _, _, run = logged_search
    opened = Run.open(run)
    with opened.files.lock():
        assert opened.driver_pid == os.getpid()
        lines = status_lines(opened, opened.session.started_at + 30)
    assert lines[0] == f"{run}: driver running (pid {os.getpid()})"
    assert lines[-1] == "time: 30s elapsed, about 0s left"  # every trial asked for is done
    assert opened.driver_pid is None


def test_status_of_a_run_being_set_up_and_of_no_run(tmp_path):
    with RunFiles(tmp_path / "starting").lock():
        shown = CliRunner().invoke(app, ["status", str(tmp_path / "starting")])
    assert shown.exit_code == 0, shown.output
    assert f"being set up by the driver (pid {os.getpid()})" in shown.output
    missing = CliRunner().invoke(app, ["status", str(tmp_path / "missing")])
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines() == [
        f"error: {tmp_path / 'missing'}: not a run folder (no config.json there or under results/)"]


def test_a_progress_logs_each_milestone_and_at_least_every_interval(monkeypatch, caplog):
    monkeypatch.setattr(progress, "LINE_INTERVAL_S", 0.2)
    caplog.set_level(logging.INFO, logger="autocompress.progress")
    with Progress("step", 4, "items") as shown:
        shown.advance()
        shown.show(loss="1.0")  # no milestone, interval not passed: no line
        assert not caplog.messages
        shown.show(milestone=True, loss="0.5")
        time.sleep(0.25)
        shown.show(loss="0.4")  # the interval passed
    assert len(caplog.messages) == 2
    assert caplog.messages[0].startswith("step: 1/4 items, loss 0.5, ")
    assert caplog.messages[1].startswith("step: 1/4 items, loss 0.4, ")
