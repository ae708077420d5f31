"""HAQ's setting: the predictor-guided search given a latency budget 1.5x below the uniform baselines.

``search_quality.py`` asks for a whole front in a fixed wall clock and measures, among other
things, whether a searched model comes within 1 point of the best uniform baseline at >= 1.5x
lower latency. A user who wants exactly that says so with ``--max-latency-ms``: this runs
``autocompress search --sampler predictor --max-latency-ms LATENCY_BUDGET_MS`` on the BitFusion
profile, same space, held-out split, wall clock and workers as ``search_quality.py``, one run
per seed, and compares the best searched model under the budget with the best uniform baseline
of the same seed's unconstrained predictor run in ``bench/results/search_quality.json``
(the baselines are slower than the budget, so the constrained run rejects them before
training), on validation accuracy (what the search selects by) and on the held-out test set.
Prints a table and writes bench/results/latency_budget.json.

    .venv/bin/python bench/latency_budget.py --budget 150 --seeds 5
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pandas as pd
import ray
from search_quality import SETTINGS, SPEEDUP, WITHIN, heldout_space, test_accuracy
from search_runs import ROOT, run_search

LATENCY_BUDGET_MS = 0.88
"""1.5x below the BitFusion profile's predicted latency of uniform 4-bit (1.3206 ms) and uniform
8-bit (1.3273 ms), the slowest-to-beat baselines the search runs; fixed before any run."""
SETTING = "bitfusion"


def best_baseline(folder: Path, label: str) -> dict:
    """Trial number and validation accuracy of the baseline ``label`` in an unconstrained run."""
    with open(folder / "trials.csv") as handle:
        row = next(r for r in csv.DictReader(handle) if r["kind"] == "baseline" and r["label"] == label)
    return {"label": label, "trial": int(row["number"]), "val_accuracy": float(row["accuracy"]),
            "latency_ms": float(row["latency_ms"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=int, default=150, help="wall-clock seconds per run (--time-budget)")
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    comparison = json.loads((ROOT / "bench" / "results" / "search_quality.json").read_text())
    unconstrained = {r["seed"]: r for r in comparison["runs"] if r["setting"] == SETTING and r["method"] == "predictor"}
    space_path, test_x, test_y = heldout_space()
    profile = ROOT / SETTINGS[SETTING][0]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}})
    runs = []
    try:
        for seed in range(args.seeds):
            reference_folder = ROOT / "results" / f"bench-quality-{SETTING}-predictor-{seed}"
            baseline = best_baseline(reference_folder, unconstrained[seed]["best_baseline"]["label"])
            baseline["test_accuracy"] = round(test_accuracy(reference_folder, baseline["trial"], test_x, test_y), 4)
            run = f"bench-budget-{SETTING}-predictor-{seed}"
            wall, rows = run_search(run, profile, space=space_path, time_budget=f"{args.budget}s", workers=2,
                                    sampler="predictor", seed=seed, max_latency_ms=LATENCY_BUDGET_MS)
            table = pd.DataFrame([r for r in rows if r["state"] == "COMPLETE" and r["kind"] == "search"]).astype(
                {"accuracy": float, "latency_ms": float, "number": int})
            best = table.sort_values(["accuracy", "latency_ms"], ascending=[False, True]).iloc[0]
            best_test = test_accuracy(ROOT / "results" / run, int(best["number"]), test_x, test_y)
            met = bool(best["accuracy"] >= baseline["val_accuracy"] - WITHIN
                       and baseline["latency_ms"] / best["latency_ms"] >= SPEEDUP)
            runs.append({"seed": seed, "wall_s": round(wall, 1), "searched_complete": len(table),
                         "rejected": sum(r["state"] == "REJECTED" for r in rows), "best_baseline": baseline,
                         "best_searched": {"trial": int(best["number"]),
                                           "val_accuracy": round(float(best["accuracy"]), 4),
                                           "test_accuracy": round(best_test, 4),
                                           "latency_ms": round(float(best["latency_ms"]), 4)},
                         "speedup": round(baseline["latency_ms"] / float(best["latency_ms"]), 3),
                         "bar_met": met})
            print(f"seed {seed}: best searched {best['accuracy']:.4f} (test {best_test:.4f}) at "
                  f"{best['latency_ms']:.4f} ms vs {baseline['label']} {baseline['val_accuracy']:.4f} "
                  f"(test {baseline['test_accuracy']:.4f}) at {baseline['latency_ms']:.4f} ms; "
                  f"{len(table)} searched; bar {'met' if met else 'not met'}", flush=True)
            out = ROOT / "bench" / "results" / "latency_budget.json"
            out.write_text(json.dumps({"setting": SETTING, "latency_budget_ms": LATENCY_BUDGET_MS,
                                       "budget_s": args.budget, "workers": 2, "runs": runs,
                                       "bar_met_seeds": sum(r["bar_met"] for r in runs)}, indent=2) + "\n")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
