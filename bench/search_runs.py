"""Shared by the search benchmarks: run one real search (as the CLI does) and read it back."""

from __future__ import annotations

import argparse
import csv
import shutil
import time
from pathlib import Path

from autocompress.search.command import search_command

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "mobilenet_digits.yaml"
RESULTS = ROOT / "results"


def run_search(run: str, profile: Path, fresh: bool = True, space: Path = SPACE,
               **options) -> tuple[float, list[dict]]:
    """Wall seconds of an ``autocompress search`` and its trials.csv rows.

    The run folder lives in results/ (so a space's trained base is reused).
    ``fresh`` replaces a folder a previous benchmark left; otherwise a run found there is
    resumed (``--resume``) and finished, so an interrupted benchmark continues where it
    stopped (its wall time then covers the last invocation only).
    """
    folder = RESULTS / run
    start = time.perf_counter()
    if not fresh and (folder / "config.json").is_file():
        search_command(run=run, resume=True, results_dir=RESULTS)
    else:
        shutil.rmtree(folder, ignore_errors=True)
        search_command(space=space, profile=profile, run=run, results_dir=RESULTS, **options)
    wall = time.perf_counter() - start
    with open(folder / "trials.csv") as handle:
        return wall, list(csv.DictReader(handle))


def require_runs(parser: argparse.ArgumentParser, folders: list[Path], option: str = "runs") -> None:
    """Stops with a usage error naming the ``folders`` that hold no finished run."""
    missing = [str(f) for f in folders if not (f / "trials.csv").is_file()]
    if missing:
        parser.error(f"{option}: no run in {', '.join(missing)}")
