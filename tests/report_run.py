"""A real run folder for the report and export tests, in the search's contract format.

Built from real pieces, not mocks: a briefly trained base of a tiny space, the uniform
baselines and a few random candidates evaluated by ``pipeline.evaluate_candidate``,
each fine-tuned model saved as the search saves it. Latency is the frozen model's
measured median on this CPU (the search would predict it from a profile).
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
import torch

from autocompress.candidate import Candidate
from autocompress.compress.freeze import freeze
from autocompress.data import load_splits
from autocompress.models.family import family_of
from autocompress.models.mobilenet import MobileNet
from autocompress.models.space_file import load_space
from autocompress.pipeline import evaluate_candidate
from autocompress.run.config import SearchConfig
from autocompress.run.files import RunFiles
from autocompress.run.run import Run
from autocompress.run.trial import Kind, State, Trial
from autocompress.tasks.classification import ClassificationTask
from autocompress.train import accuracy, train

SPACE = Path(__file__).parent / "spaces" / "report_tiny.yaml"
RANDOM_TRIALS = 7

PROFILE = {
    "schema_version": 2,
    "device": {"name": "test-host-torch-fp32", "kind": "measured", "runtime": "torch-fp32", "threads": 1,
               "clock": "thread-cpu", "batch_size": 1, "host_cpu": "test CPU", "host_threads": 1,
               "date": "2026-11-26", "settings": {"allocator": "system default"}},
    "space": str(SPACE), "native_weight_bits": [32], "native_activation_bits": [32],
    "activation_bits_follow_weights": False, "native_sparsity": [], "entries": {}, "statistic": "median",
}
"""A valid profile without entries: this run's latencies were measured, not predicted."""


@torch.no_grad()
def _latency_ms(model: torch.nn.Module, shape: tuple[int, ...], repeats: int = 15) -> float:
    frozen, x = freeze(model), torch.randn(shape)
    times = []
    for _ in range(repeats + 3):
        start = time.perf_counter()
        frozen(x)
        times.append((time.perf_counter() - start) * 1000)
    return float(torch.tensor(times[3:]).median())


def _candidates(space) -> list[tuple[str, Candidate]]:
    arch = family_of(space).largest_arch()
    baselines = [
        ("float", family_of(space).uniform_candidate(arch)),
        ("uniform-8bit", family_of(space).uniform_candidate(arch, weight_bits=8, activation_bits=8)),
        ("uniform-4bit", family_of(space).uniform_candidate(arch, weight_bits=4, activation_bits=8)),
        ("channel-50", family_of(space).uniform_candidate(arch, sparsity=0.5, sparsity_kind="channel")),
        ("rank-0.5", family_of(space).uniform_candidate(arch, rank_ratio=0.5)),
    ]
    rng = random.Random(3)
    return baselines + [("", family_of(space).random_candidate(rng)) for _ in range(RANDOM_TRIALS)]


def build_run(run_dir: Path) -> Path:
    """Write a finished run of the tiny space into ``run_dir``; returns it."""
    space = load_space(SPACE)
    splits = load_splits(space.data)
    base = train(MobileNet(space, family_of(space).largest_arch()), splits, space.training.base_epochs, space.training)
    files = RunFiles(run_dir)
    files.models.mkdir(parents=True)
    files.profile.write_text(json.dumps(PROFILE, indent=2))
    trials, test_accuracy = [], {}
    for number, (label, candidate) in enumerate(_candidates(space)):
        started = datetime.now(timezone.utc)
        model, result = evaluate_candidate(space, candidate, base, ClassificationTask(space, splits), seed=number,
                                           epochs=number % 2)
        torch.save({"state_dict": model.state_dict(), "candidate": candidate.to_json()}, files.model_path(number))
        finished = datetime.now(timezone.utc)
        trials.append(Trial(
            number=number, kind=Kind.BASELINE if label else Kind.SEARCH, label=label, state=State.COMPLETE,
            accuracy=result.accuracy, accuracy_before=result.accuracy_before,
            latency_ms=_latency_ms(model, space.input_shape()), size_kb=result.size_bytes / 1024,
            candidate_hash=candidate.hash, candidate=candidate.to_json(), started_at=started.isoformat(),
            finished_at=finished.isoformat(), duration_s=(finished - started).total_seconds(),
            finetune_s=result.finetune_seconds))
        test_accuracy[number] = accuracy(model, splits.test_x, splits.test_y)
    objectives = ["accuracy", "latency_ms"]
    SearchConfig(run=run_dir.name, space_path=str(SPACE), space=space.model_dump(),
                 profile_path="hw_profiles/test-host-torch-fp32.json", profile_device=PROFILE["device"]["name"],
                 objectives=objectives, sampler="random", trials=len(trials) - 5, workers=1, seed=0,
                 base_path="results/_base/report_tiny.pt", created=trials[0].started_at,
                 split_images=splits.image_counts()).write(files.config)
    run = Run.open(run_dir)
    run.write_tables(trials)
    run.write_test_accuracy({t.number: test_accuracy[t.number]  # as the search measures: front and baselines
                             for t in run.test_split_trials()})
    run.write_tables(trials)
    files.log.write_text("built by tests/report_run.py\n")
    return run_dir


def in_progress_copy(run_dir: Path, target: Path) -> Path:
    """A copy of a finished run as if caught mid-search: the last trials RUNNING, unmeasured."""
    shutil.copytree(run_dir, target)
    run = Run.open(target)
    trials = run.trials
    running = [replace(t, state=State.RUNNING, accuracy=None, accuracy_before=None, latency_ms=None, size_kb=None,
                       finished_at="", duration_s=None, finetune_s=None) for t in trials[-3:]]
    numbers = {t.number for t in running}
    run.write_test_accuracy({n: v for n, v in run.test_accuracy().items() if n not in numbers})
    run.write_tables(trials[:-3] + running)
    run.files.report.unlink(missing_ok=True)
    return target


_BUILT: dict[str, Path] = {}


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """The tiny run, built once per session however many test modules import this fixture."""
    if "run" not in _BUILT:
        _BUILT["run"] = build_run(tmp_path_factory.mktemp("runs") / "tiny")
    return _BUILT["run"]
