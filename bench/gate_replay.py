"""Which cheap fidelity should the fine-tune gate predict from? A walk-forward replay of runs.

For each fine-tuned search trial of each run, in the order the trials started, a model of
the gate's kind (a Bayesian linear regression on standardised features) is fitted on the
trials (baselines included) that had finished before it started, and predicts its
fine-tuned validation accuracy from one feature set; Kendall tau and mean absolute error of
those predictions against what the trials measured, per run and their median per setting.
The feature sets: the validation accuracy before fine-tuning, the agreement with the base on
the training images before fine-tuning, each with and without the log of the predicted
latency (the shipped gate: agreement + log latency). A run's trials are the ones its own
gate let through (a pruned trial has no fine-tuned accuracy), so every feature set is scored
on the same trials. Prints and writes bench/results/gate_replay.json.

    .venv/bin/python bench/gate_replay.py            # the predictor runs of search_quality.py
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import kendalltau
from search_runs import ROOT
from sklearn.linear_model import BayesianRidge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

FEATURES = {
    "accuracy_before": ["accuracy_before"],
    "accuracy_before + log latency": ["accuracy_before", "log_latency"],
    "agreement_before": ["agreement_before"],
    "agreement_before + log latency (shipped)": ["agreement_before", "log_latency"],
}
MIN_FITTED = 6
"""Trials a model needs before its predictions are scored."""


def replay(trials: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """Walk-forward predictions of every searched trial's accuracy from ``columns``."""
    predicted, measured = [], []
    for _, trial in trials[trials["kind"] == "search"].iterrows():
        known = trials[trials["finished_at"] <= trial["started_at"]]
        if len(known) < MIN_FITTED:
            continue
        model = make_pipeline(StandardScaler(), BayesianRidge())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(known[columns].to_numpy(float), known["accuracy"].to_numpy(float))
        predicted.append(float(model.predict(trial[columns].to_numpy(float).reshape(1, -1))[0]))
        measured.append(float(trial["accuracy"]))
    return {"kendall_tau": round(float(kendalltau(predicted, measured).statistic), 4),
            "mae": round(float(np.mean(np.abs(np.subtract(predicted, measured)))), 4), "trials": len(measured)}


def fine_tuned(folder: Path) -> pd.DataFrame:
    table = pd.read_csv(folder / "trials.csv")
    table = table[(table["state"] == "COMPLETE") & table["kind"].isin(["search", "baseline"])].copy()
    table["log_latency"] = [math.log(v) for v in table["latency_ms"]]
    return table.sort_values("started_at")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="*", type=Path,
                        default=sorted((ROOT / "results").glob("bench-quality-*-predictor-*")))
    args = parser.parse_args()
    result: dict[str, dict] = {}
    for folder in args.runs:
        setting = folder.name.removeprefix("bench-quality-").rsplit("-predictor-", 1)[0]
        trials = fine_tuned(folder)
        for name, columns in FEATURES.items():
            result.setdefault(setting, {}).setdefault(name, {})[folder.name] = replay(trials, columns)
    for setting, by_features in result.items():
        for name, runs in by_features.items():
            taus = [r["kendall_tau"] for r in runs.values()]
            runs["median_kendall_tau"] = round(statistics.median(taus), 4)
            runs["median_mae"] = round(statistics.median(r["mae"] for r in runs.values() if isinstance(r, dict)), 4)
            print(f"{setting:>22} {name:>42}: tau median {runs['median_kendall_tau']:.3f} per run "
                  + " ".join(f"{t:.2f}" for t in taus) + f", MAE median {runs['median_mae']:.4f}")
    out = ROOT / "bench" / "results" / "gate_replay.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
