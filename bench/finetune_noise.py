"""How far can any accuracy predictor rank a run's trials? The noise of its target, measured.

A search trial's fine-tuned accuracy is one fine-tune with the run's seed. This fine-tunes
the same candidates again (the run's fine-tuned search trials, or the first ``--trials``
of them; same base, data and epochs) under two other seeds and reports Kendall tau:

- between the two repeats, and of each repeat against the run's own figure: a predictor's
  tau against that figure cannot be expected far above what a second fine-tune of the very
  same candidates reaches;
- of the repeats' mean against the run's figure: what a predictor that knew a candidate's
  accuracy to within the noise of two fine-tunes would score (a practical ceiling);
- of the run's own predictions, made before each trial (the screening predictor's
  ``predicted_accuracy``, the fine-tune gate's ``predicted_accuracy_cheap``), against the
  run's figure, each repeat and the repeats' mean, each on the trials it predicted.

Every figure also on the trials the gate judged, where the predictor-guided search's tau
at proposal is measured. Two processes, one torch thread each; no timing involved.

    .venv/bin/python bench/finetune_noise.py results/bench-quality-bitfusion-predictor-10 ...

Prints a line per run and writes bench/results/finetune_noise.json (or ``--out``) after each run.
"""

from __future__ import annotations

import argparse
import csv
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
from search_runs import ROOT, open_run, require_runs, tau

from autocompress import pipeline
from autocompress.models.family import family_of

REPEAT_SEEDS = (101, 202)
PREDICTIONS = {"screening": "predicted_accuracy", "gate": "predicted_accuracy_cheap"}


def finetuned_accuracies(folder: Path, candidates: list[str], seed: int) -> list[float]:
    """Validation accuracy of each candidate (JSON) fine-tuned from the run's base with ``seed``."""
    torch.set_num_threads(1)
    run = open_run(folder)
    family = family_of(run.space)
    return [pipeline.evaluate_candidate(run.space, family.parse_candidate(c), run.base, run.splits, seed=seed,
                                        epochs=run.config.get("finetune_epochs"))[1].accuracy
            for c in candidates]


def agreement(own: np.ndarray, first: np.ndarray, second: np.ndarray, predictions: dict[str, np.ndarray],
              rows: np.ndarray) -> dict:
    """The module docstring's taus on the trials selected by the boolean mask ``rows``."""
    mean = (first + second) / 2
    result = {"trials": int(rows.sum()),
              "tau_repeat_vs_repeat": tau(first[rows], second[rows]),
              "tau_run_vs_repeats": [tau(own[rows], first[rows]), tau(own[rows], second[rows])],
              "tau_run_vs_repeat_mean": tau(own[rows], mean[rows]),
              "mean_abs_difference_between_repeats": round(float(np.mean(np.abs(first - second)[rows])), 4)}
    for name, predicted in predictions.items():
        made = rows & ~np.isnan(predicted)
        result[name] = {"trials": int(made.sum()), "tau_vs_run": tau(predicted[made], own[made]),
                        "tau_vs_repeats": [tau(predicted[made], first[made]), tau(predicted[made], second[made])],
                        "tau_vs_repeat_mean": tau(predicted[made], mean[made])}
    return result


def column(rows: list[dict], name: str) -> np.ndarray:
    return np.array([float(r[name]) if r.get(name) else np.nan for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    parser.add_argument("--trials", type=int, default=None, help="the first N fine-tuned search trials per run "
                        "(default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "finetune_noise.json")
    args = parser.parse_args()
    require_runs(parser, args.runs)
    results = []
    for folder in args.runs:
        with open(folder / "trials.csv") as handle:
            rows = [r for r in csv.DictReader(handle) if r["kind"] == "search" and r["state"] == "COMPLETE"]
        rows = rows[:args.trials]
        own = column(rows, "accuracy")
        with ProcessPoolExecutor(len(REPEAT_SEEDS)) as pool:
            first, second = (np.array(accuracies) for accuracies in pool.map(
                finetuned_accuracies, [folder] * 2, [[r["candidate"] for r in rows]] * 2, REPEAT_SEEDS))
        predictions = {name: column(rows, key) for name, key in PREDICTIONS.items()}
        gated = ~np.isnan(predictions["gate"])
        result = {"run": folder.name, "run_seed_accuracy_range": [float(own.min()), float(own.max())],
                  "all": agreement(own, first, second, predictions, np.ones(len(rows), dtype=bool)),
                  "gated": agreement(own, first, second, predictions, gated) if gated.any() else None,
                  "accuracy": {"run": own.tolist(), f"seed {REPEAT_SEEDS[0]}": first.tolist(),
                               f"seed {REPEAT_SEEDS[1]}": second.tolist()}}
        results.append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "accuracy"}), flush=True)
        # after every run: a long invocation stopped midway keeps what it measured
        args.out.write_text(json.dumps({"repeat_seeds": list(REPEAT_SEEDS), "runs": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
