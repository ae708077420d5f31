"""Shared by the search benchmarks: run one real search (as the CLI does) and read it back."""

from __future__ import annotations

import csv
import time
from pathlib import Path

from autocompress.search.command import search_command

ROOT = Path(__file__).resolve().parents[1]
SPACE = ROOT / "search_spaces" / "mobilenet_digits.yaml"
RESULTS = ROOT / "results"


def run_search(run: str, profile: Path, **options) -> tuple[float, list[dict]]:
    """Wall seconds of a complete ``autocompress search`` and its trials.csv rows.

    The run folder lives in results/ (so the default space's trained base is reused) and
    is replaced if a previous benchmark left one of that name.
    """
    folder = RESULTS / run
    if folder.exists():
        for path in sorted(folder.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        folder.rmdir()
    start = time.perf_counter()
    search_command(space=SPACE, profile=profile, run=run, results_dir=RESULTS, **options)
    wall = time.perf_counter() - start
    with open(folder / "trials.csv") as handle:
        return wall, list(csv.DictReader(handle))
