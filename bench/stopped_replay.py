"""Were the fine-tunes the gate stopped after their first epoch worth finishing?

For each trial of the given predictor-guided runs that the fine-tune gate stopped after the
first epoch (PRUNED with a ``predicted_accuracy_first_epoch``), runs its fine-tune to the end
exactly as the run would have (same base, seed, epochs; one torch thread, as the search's
workers had: a quantized fine-tune's result depends on it), and reports its final
validation accuracy against the gate's prediction, whether it would have joined the run's
final front of searched trials, and the hypervolume the stopped trials would have added
(the benchmark's normalisation and reference, ``search_quality.py``). No timing involved.

    .venv/bin/python bench/stopped_replay.py results/bench-quality-cpu-torch-fp32-native-predictor-{0..4}

Prints a line per trial and per run, writes bench/results/stopped_replay.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from search_quality import SETTINGS, normalised_hv
from search_runs import ROOT, open_run, require_runs

from autocompress.models.family import family_of
from autocompress.pipeline import evaluate_candidate
from autocompress.report.pareto import pareto_mask


def setting_of(folder: Path) -> str:
    """The benchmark setting a run folder was made for (its name holds it)."""
    return next(name for name in sorted(SETTINGS, key=len, reverse=True) if f"-{name}-" in folder.name)


def replay_stopped(folder: Path) -> dict:
    run = open_run(folder)
    family = family_of(run.space)
    trials = pd.read_csv(folder / "trials.csv")
    searched = trials[(trials["state"] == "COMPLETE") & (trials["kind"] == "search")]
    stopped = trials[(trials["state"] == "PRUNED") & trials["predicted_accuracy_first_epoch"].notna()]
    points = np.column_stack([1.0 - searched["accuracy"], searched["latency_ms"]])
    front = points[pareto_mask(points)]
    rows = []
    for trial in stopped.itertuples():
        candidate = family.parse_candidate(trial.candidate)
        _, evaluation = evaluate_candidate(run.space, candidate, run.base, run.splits, run.config["seed"],
                                           run.config.get("finetune_epochs"))
        point = np.array([1.0 - evaluation.accuracy, trial.latency_ms])
        rows.append({"trial": int(trial.number), "accuracy_first_epoch": float(trial.accuracy_first_epoch),
                     "predicted": float(trial.predicted_accuracy_first_epoch), "final": evaluation.accuracy,
                     "latency_ms": float(trial.latency_ms),
                     "on_final_front": not bool(np.any(np.all(front <= point, axis=1)))})
        print(json.dumps({"run": folder.name} | rows[-1]), flush=True)
    reference_ms = SETTINGS[setting_of(folder)][2]
    hv = normalised_hv(searched["accuracy"], searched["latency_ms"], reference_ms)
    with_stopped = normalised_hv(pd.concat([searched["accuracy"], pd.Series([r["final"] for r in rows])]),
                                 pd.concat([searched["latency_ms"], pd.Series([r["latency_ms"] for r in rows])]),
                                 reference_ms)
    return {"run": folder.name, "stopped": len(rows), "on_final_front": sum(r["on_final_front"] for r in rows),
            "hypervolume": round(hv, 4), "hypervolume_with_stopped_finished": round(with_stopped, 4),
            "trials": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished predictor-guided run folders")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "stopped_replay.json")
    args = parser.parse_args()
    require_runs(parser, args.runs)
    torch.set_num_threads(1)
    results = []
    for folder in args.runs:
        results.append(replay_stopped(folder))
        print(json.dumps({k: v for k, v in results[-1].items() if k != "trials"}), flush=True)
        args.out.write_text(json.dumps({"runs": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
