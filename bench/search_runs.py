"""Shared by the search benchmarks: run one real search (as the CLI does), read it back, and
open a finished run folder's inputs to evaluate its candidates again."""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from scipy.stats import kendalltau
from torch import nn

from autocompress.base import load_base
from autocompress.data import Splits, load_splits
from autocompress.run.files import RunFiles
from autocompress.run.run import Run
from autocompress.search.command import search_command
from autocompress.space import SearchSpace

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "mobilenet_digits.yaml"
RESULTS = ROOT / "results"


def run_search(run: str, profile: Path, fresh: bool = True, space: Path = SPACE,
               **options) -> tuple[float, list[dict]]:
    """Wall seconds of an ``autocompress search`` and its trials' rows (``Trial.row``).

    The run folder lives in results/ (so a space's trained base is reused).
    ``fresh`` replaces a folder a previous benchmark left; otherwise a run found there is
    resumed (``--resume``) and finished, so an interrupted benchmark continues where it
    stopped (its wall time then covers the last invocation only).
    """
    folder = RESULTS / run
    start = time.perf_counter()
    if not fresh and Run.exists(folder):
        search_command(run=run, resume=True, results_dir=RESULTS)
    else:
        shutil.rmtree(folder, ignore_errors=True)
        search_command(space=space, profile=profile, run=run, results_dir=RESULTS, **options)
    wall = time.perf_counter() - start
    return wall, [trial.row() for trial in Run.open(folder).trials]


def require_runs(parser: argparse.ArgumentParser, folders: list[Path], option: str = "runs") -> None:
    """Stops with a usage error naming the ``folders`` that hold no finished run."""
    missing = [str(f) for f in folders if not RunFiles(f).trials.is_file()]
    if missing:
        parser.error(f"{option}: no run in {', '.join(missing)}")


@dataclass(frozen=True)
class StoredRun:
    """What a finished run's trials were evaluated with: its space, data, base network and config."""

    space: SearchSpace
    splits: Splits
    base: nn.Module
    config: dict


def open_run(folder: Path) -> StoredRun:
    run = Run.open(folder)
    base, _ = load_base(run.space, run.files.base)
    return StoredRun(run.space, load_splits(run.space.data), base, run.config.model_dump())


def tau(a, b) -> float | None:
    """Kendall tau of two sequences, to 4 places (None under two items)."""
    return round(float(kendalltau(a, b).statistic), 4) if len(a) > 1 else None
