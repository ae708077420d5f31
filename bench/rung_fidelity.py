"""Would a rung fidelity rank better than the cheap one? Accuracy after each epoch of a trial's own fine-tune.

The fine-tune gate predicts a candidate's fine-tuned accuracy from its cheap fidelity (the
accuracy before any fine-tune). This replays, for each finished trial of the given runs, the
fine-tune the search ran (same base, seed, epochs and, with ``--threads``, torch threads, so
the final accuracy is the run's own: the script counts how many match exactly), and measures
the validation accuracy after each epoch but the last on a copy with recalibrated batch norm.
The fine-tune goes on from where that measurement was taken, so a gate judging it (a rung,
as in successive halving) would cost a pruned candidate those epochs and a kept one only the
measurement. For the trials the run's gate judged, it reports Kendall tau against the final
accuracy of the cheap accuracy and of each epoch's: raw, and as a walk-forward Bayesian line
(each trial predicted by a line fitted on the run's fine-tuned trials finished before it
started, baselines included), which is what the gate would score. No timing involved.

    .venv/bin/python bench/rung_fidelity.py results/bench-quality-cpu-torch-fp32-native-predictor-{0..4}

Prints a line per run and writes bench/results/rung_fidelity.json (or ``--out``) after each run.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import pandas as pd
import torch
from search_runs import ROOT, open_run, require_runs, tau
from sklearn.linear_model import BayesianRidge

from autocompress.models.family import family_of
from autocompress.pipeline import accuracy_mid_finetune, compress_and_calibrate
from autocompress.train import accuracy, finetune


def replay(folder: Path) -> pd.DataFrame:
    """Each finished trial of the run fine-tuned again: cheap, per-epoch and final accuracy."""
    run = open_run(folder)
    space, splits, base, config = run.space, run.splits, run.base, run.config
    epochs = space.training.finetune_epochs if config["finetune_epochs"] is None else config["finetune_epochs"]
    family = family_of(space)
    trials = pd.read_csv(folder / "trials.csv")
    rows = []
    for trial in trials[trials["state"] == "COMPLETE"].itertuples():
        model, before = compress_and_calibrate(space, family.parse_candidate(trial.candidate), base, splits)
        midway: dict[str, float] = {}

        def measure(epoch: int, model=model, midway=midway) -> bool:
            if epoch < epochs:  # the last epoch's is the final accuracy
                midway[f"after_epoch_{epoch}"] = accuracy_mid_finetune(model, splits)
            return True

        finetune(model, base, splits, space.training, epochs=epochs, seed=config["seed"], after_epoch=measure)
        rows.append({"number": trial.number, "kind": trial.kind,
                     "gated": bool(pd.notna(trial.predicted_accuracy_cheap)),
                     "started_at": trial.started_at, "finished_at": trial.finished_at,
                     "run_accuracy": float(trial.accuracy), "accuracy": accuracy(model, splits.val_x, splits.val_y),
                     "accuracy_before": before, **midway})
    return pd.DataFrame(rows)


def walk_forward(table: pd.DataFrame, judged: pd.DataFrame, feature: str) -> list[float]:
    """Each judged trial's final accuracy predicted by a line in ``feature`` fitted on the
    trials finished before it started."""
    predictions = []
    for trial in judged.itertuples():
        known = table[table["finished_at"] <= trial.started_at]
        line = BayesianRidge().fit(known[[feature]].to_numpy(), known["accuracy"].to_numpy())
        predictions.append(float(line.predict([[getattr(trial, feature)]])[0]))
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="finished run folders")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, as the search's workers had (2 workers on 2 cores: 1); a quantized "
                             "fine-tune's result depends on it")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "rung_fidelity.json")
    args = parser.parse_args()
    require_runs(parser, args.runs)
    torch.set_num_threads(args.threads)
    results = []
    for folder in args.runs:
        table = replay(folder)
        judged = table[(table["kind"] == "search") & table["gated"]]
        features = ["accuracy_before"] + [c for c in table.columns if c.startswith("after_epoch_")]
        profile = Path(json.loads((folder / "config.json").read_text())["profile_path"]).stem
        result = {"run": folder.name, "profile": profile,
                  "trials": len(table), "exact_reproductions": int((table["accuracy"] == table["run_accuracy"]).sum()),
                  "gated_trials": len(judged),
                  "tau": {f: tau(judged[f], judged["accuracy"]) for f in features},
                  "tau_walk_forward": {f: tau(walk_forward(table, judged, f), judged["accuracy"]) for f in features}}
        results.append(result | {"table": table.to_dict(orient="records")})
        print(json.dumps(result), flush=True)
        by_profile = {}
        for r in results:
            by_profile.setdefault(r["profile"], []).append(r)
        summary = {profile: {kind: {f: statistics.median(r[kind][f] for r in runs) for f in runs[0][kind]}
                             for kind in ("tau", "tau_walk_forward")} for profile, runs in by_profile.items()}
        args.out.write_text(json.dumps({"threads": args.threads, "median": summary, "runs": results}, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
