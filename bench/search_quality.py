"""Search quality at an equal trial budget: NSGA-II and TPE against random search.

For each sampler and seed, runs ``autocompress search`` on the default space with the
same number of trials, then computes the hypervolume of the run's accuracy/latency front
(against one reference point shared by all runs: error 1, 1.1 x the largest latency
seen) and which of the five uniform baselines the front of *search* trials dominates.
Also reported, but not the issue's bar (added after the first results showed that with
error 1 as reference the single fastest point decides most of the volume): the same
hypervolume with the reference at accuracy 0.9, the region a model would be shipped from.
Trials fine-tune as the space says (2 epochs).
Runs left by an interrupted benchmark are resumed (the search's
own ``--resume``), so it can be run again until it completes. Prints a table and writes
bench/results/search_quality.json.

    .venv/bin/python bench/search_quality.py --profile hw_profiles/bitfusion.json --trials 40 --seeds 5 --fresh
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import ray
from search_runs import ROOT, run_search

from autocompress.report.pareto import hypervolume, minimisation_points, pareto_mask, reference_scale

OBJECTIVES = ["accuracy", "latency_ms"]
SAMPLERS = ("nsga2", "tpe", "random")
SHIPPABLE_ACCURACY = 0.9


def trials_span_s(rows: list[dict]) -> float:
    """Seconds from the first trial's start to the last one's end (the same whether the run
    went through in one invocation or was resumed)."""
    started = pd.to_datetime([r["started_at"] for r in rows if r["started_at"]])
    finished = pd.to_datetime([r["finished_at"] for r in rows if r["finished_at"]])
    return float((finished.max() - started.min()).total_seconds())


def _complete(rows: list[dict]) -> pd.DataFrame:
    table = pd.DataFrame([r for r in rows if r["state"] == "COMPLETE"])
    return table.astype({"accuracy": float, "latency_ms": float})


def dominated_baselines(table: pd.DataFrame, scale: dict[str, float]) -> list[str]:
    """Labels of the baselines that some search trial Pareto-dominates."""
    search = minimisation_points(table[table["kind"] == "search"], OBJECTIVES, scale)
    labels = []
    for _, row in table[table["kind"] == "baseline"].iterrows():
        point = minimisation_points(row.to_frame().T, OBJECTIVES, scale)[0]
        if np.any(np.all(search <= point, axis=1) & np.any(search < point, axis=1)):
            labels.append(row["label"])
    return labels


def median_by_sampler(runs: list[dict], figure: str) -> dict[str, float]:
    """Median of one per-run figure over each sampler's seeds."""
    return {s: statistics.median(r[figure] for r in runs if r["sampler"] == s) for s in SAMPLERS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", type=Path, default=ROOT / "hw_profiles" / "bitfusion.json")
    parser.add_argument("--trials", type=int, default=60, help="search trials per run (plus 5 baselines)")
    parser.add_argument("--seeds", type=int, default=3, help="runs per sampler, seeds 0..N-1")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default: the space's")
    parser.add_argument("--fresh", action="store_true",
                        help="start every run anew (default: resume and finish runs an interrupted bench left)")
    args = parser.parse_args()
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)  # one Ray for all runs
    tables = {}
    for sampler in SAMPLERS:
        for seed in range(args.seeds):
            _, rows = run_search(f"bench-quality-{sampler}-{seed}", args.profile, fresh=args.fresh,
                                    trials=args.trials, workers=2, sampler=sampler, seed=seed,
                                    finetune_epochs=args.finetune_epochs)
            tables[sampler, seed] = (_complete(rows), trials_span_s(rows))
    ray.shutdown()
    scale = reference_scale([table for table, _ in tables.values()], OBJECTIVES)
    reference = np.ones(len(OBJECTIVES))
    shippable_reference = np.array([1 - SHIPPABLE_ACCURACY, 1.0])
    runs = []
    for (sampler, seed), (table, wall) in tables.items():
        points = minimisation_points(table, OBJECTIVES, scale)
        front_points = points[pareto_mask(points)]
        dominated = dominated_baselines(table, scale)
        runs.append({"sampler": sampler, "seed": seed, "trials_span_s": round(wall, 1), "complete": len(table),
                     "hypervolume": round(hypervolume(front_points, reference), 4),
                     "hypervolume_above_accuracy_0.9": round(hypervolume(front_points, shippable_reference), 4),
                     "searched_trials_above_accuracy_0.9": int(((table["kind"] == "search")
                                                                & (table["accuracy"] >= SHIPPABLE_ACCURACY)).sum()),
                     "baselines_dominated": dominated,
                     "baselines_not_dominated": sorted(set(table.loc[table["kind"] == "baseline", "label"])
                                                       - set(dominated))})
    medians = median_by_sampler(runs, "hypervolume")
    shippable_medians = median_by_sampler(runs, "hypervolume_above_accuracy_0.9")
    result = {"space": "search_spaces/mobilenet_digits.yaml", "profile": str(args.profile), "trials": args.trials,
              "finetune_epochs": args.finetune_epochs, "reference_scale": scale, "runs": runs,
              "median_hypervolume": medians,
              "median_hypervolume_above_accuracy_0.9 (not the bar)": shippable_medians,
              "bars": {"nsga2 median HV > random": bool(medians["nsga2"] > medians["random"]),
                       "tpe median HV > random": bool(medians["tpe"] > medians["random"])}}
    print(f"{'sampler':>8} {'seed':>4} {'HV':>7} {'HV>=0.9':>8} {'n>=0.9':>6} {'span s':>7}  baselines dominated")
    for run in runs:
        print(f"{run['sampler']:>8} {run['seed']:>4} {run['hypervolume']:>7.4f} "
              f"{run['hypervolume_above_accuracy_0.9']:>8.4f} {run['searched_trials_above_accuracy_0.9']:>6} "
              f"{run['trials_span_s']:>7}  "
              f"{len(run['baselines_dominated'])}/5 (not: {', '.join(run['baselines_not_dominated']) or '-'})")
    print("median hypervolume: " + ", ".join(f"{s} {v:.4f}" for s, v in medians.items()))
    print("median hypervolume above accuracy 0.9 (not the bar): "
          + ", ".join(f"{s} {v:.4f}" for s, v in shippable_medians.items()))
    out = ROOT / "bench" / "results" / "search_quality.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
