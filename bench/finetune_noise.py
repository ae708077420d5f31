"""How far can any accuracy predictor rank a run's trials? The noise of its target, measured.

A search trial's fine-tuned accuracy is one fine-tune with the run's seed. This fine-tunes
the same candidates again (the first ``--trials`` fine-tuned search trials of each run,
same base, data and epochs) under two other seeds and reports the Kendall tau between the
repeats and against the run's own figure: a predictor's tau against that figure cannot be
expected above what a second fine-tune of the very same candidates reaches. Two processes,
one torch thread each; no timing involved.

    .venv/bin/python bench/finetune_noise.py results/bench-quality-bitfusion-predictor-0 ...

Prints and writes bench/results/finetune_noise.json.
"""

from __future__ import annotations

import argparse
import csv
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from scipy.stats import kendalltau

from autocompress import pipeline
from autocompress.base import build_base
from autocompress.data import load_splits
from autocompress.models.family import family_of
from autocompress.space import load_space

ROOT = Path(__file__).resolve().parents[1]
REPEAT_SEEDS = (101, 202)


def finetuned_accuracies(folder: Path, candidates: list[str], seed: int) -> list[float]:
    """Validation accuracy of each candidate (JSON) fine-tuned from the run's base with ``seed``."""
    torch.set_num_threads(1)
    space = load_space(folder / "space.yaml")
    splits = load_splits(space.data)
    base = build_base(space)
    base.load_state_dict(torch.load(folder / "base.pt", map_location="cpu", weights_only=True)["state_dict"])
    base.eval()
    family = family_of(space)
    return [pipeline.evaluate_candidate(space, family.parse_candidate(c), base, splits, seed=seed)[1].accuracy
            for c in candidates]


def tau(a: list[float], b: list[float]) -> float:
    return round(float(kendalltau(a, b).statistic), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    parser.add_argument("--trials", type=int, default=24, help="fine-tuned search trials per run, in trial order")
    args = parser.parse_args()
    results = []
    for folder in args.runs:
        with open(folder / "trials.csv") as handle:
            rows = [r for r in csv.DictReader(handle) if r["kind"] == "search" and r["state"] == "COMPLETE"]
        rows = rows[:args.trials]
        own = [float(r["accuracy"]) for r in rows]
        with ProcessPoolExecutor(len(REPEAT_SEEDS)) as pool:
            first, second = pool.map(finetuned_accuracies, [folder] * 2, [[r["candidate"] for r in rows]] * 2,
                                     REPEAT_SEEDS)
        result = {"run": folder.name, "trials": len(rows), "run_seed_accuracy_range": [min(own), max(own)],
                  "tau_repeat_vs_repeat": tau(first, second),
                  "tau_run_vs_repeats": [tau(own, first), tau(own, second)],
                  "mean_abs_difference_between_repeats": round(float(np.mean(np.abs(np.subtract(first, second)))), 4),
                  "accuracy": {"run": own, f"seed {REPEAT_SEEDS[0]}": first, f"seed {REPEAT_SEEDS[1]}": second}}
        results.append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "accuracy"}), flush=True)
    out = ROOT / "bench" / "results" / "finetune_noise.json"
    out.write_text(json.dumps({"repeat_seeds": list(REPEAT_SEEDS), "runs": results}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
