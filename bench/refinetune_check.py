"""How much of a chosen model's validation accuracy was its fine-tune's luck?

For each search-quality run (``bench/search_quality.py`` leaves them in results/), takes the
model its 1.5x check looks at (of the searched models at >= 1.5x lower predicted latency than
the most accurate baseline, the most accurate on validation) and the next ``--top - 1`` of
them by validation accuracy, fine-tunes each candidate again from the same base under
``--repeats`` other seeds, exactly as the search did (same epochs, same distillation), and
measures every model on validation and on every image no search saw (the benchmark's
held-out 20% plus the space's own test split). Where the search's own measurement was
luck, the re-fine-tunes fall back on validation; where the candidate happens to suit the
validation images, they do not, and only held-out images show it.

    .venv/bin/python bench/refinetune_check.py --runs bench-quality-bitfusion-predictor-{0..4}

Prints a line per model and writes bench/results/refinetune_check.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import pandas as pd
import torch
from search_quality import all_heldout, baseline_and_fast_models, heldout_space, trial_accuracies
from search_runs import RESULTS, ROOT, open_run, require_runs

from autocompress.pipeline import evaluate_candidate, load_trial_model
from autocompress.train import accuracy


def check_run(folder: Path, top: int, repeats: int, heldout_x: torch.Tensor, heldout_y: torch.Tensor) -> list[dict]:
    run = open_run(folder)
    space, splits, base, epochs = run.space, run.splits, run.base, run.config.get("finetune_epochs")
    trials = pd.read_csv(folder / "trials.csv")
    best, fast = baseline_and_fast_models(trials[trials["state"] == "COMPLETE"])
    chosen = fast.head(top)
    baseline_heldout = trial_accuracies(folder, int(best["number"]), (heldout_x, heldout_y))[0]
    records = []
    for rank, row in enumerate(chosen.itertuples()):
        candidate, model = load_trial_model(space, folder / "models" / f"trial_{row.number}.pt")
        refits = []
        for repeat in range(repeats):
            refit, measured = evaluate_candidate(space, candidate, base, splits, seed=1000 + repeat, epochs=epochs)
            refits.append({"val_accuracy": round(measured.accuracy, 4),
                           "heldout_accuracy": round(accuracy(refit.eval(), heldout_x, heldout_y), 4)})
        record = {"run": folder.name, "trial": int(row.number), "rank_on_val": rank,
                  "speedup": round(float(best["latency_ms"] / row.latency_ms), 2),
                  "val_accuracy": round(float(row.accuracy), 4),
                  "heldout_accuracy": round(accuracy(model, heldout_x, heldout_y), 4),
                  "baseline_val_accuracy": round(float(best["accuracy"]), 4),
                  "baseline_heldout_accuracy": round(baseline_heldout, 4), "refits": refits,
                  "refit_val_mean": round(statistics.mean(r["val_accuracy"] for r in refits), 4)}
        print(f"{folder.name} trial {record['trial']} (#{rank + 1} on val, {record['speedup']}x): val "
              f"{record['val_accuracy']:.4f} -> re-fine-tuned {record['refit_val_mean']:.4f}; held-out "
              f"{record['heldout_accuracy']:.4f} (baseline {baseline_heldout:.4f})", flush=True)
        records.append(record)
    return records


def summarise(records: list[dict]) -> dict:
    """Validation drop on re-fine-tuning, for the 1.5x check's models and for the runners-up."""
    def drops(rows: list[dict]) -> list[float]:
        return [round(r["val_accuracy"] - r["refit_val_mean"], 4) for r in rows]
    checked = [r for r in records if r["rank_on_val"] == 0]
    others = [r for r in records if r["rank_on_val"] > 0]
    return {"checked_model_val_drop": drops(checked),
            "checked_model_val_drop_median": statistics.median(drops(checked)) if checked else None,
            "runner_up_val_drop_median": statistics.median(drops(others)) if others else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", nargs="+", required=True, help="run folders under results/")
    parser.add_argument("--top", type=int, default=3, help="models per run, most accurate on validation first")
    parser.add_argument("--repeats", type=int, default=2, help="re-fine-tunes per model")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "refinetune_check.json")
    args = parser.parse_args()
    folders = [RESULTS / run for run in args.runs]
    require_runs(parser, folders, "--runs")
    torch.set_num_threads(2)
    space_path, test_x, test_y = heldout_space()
    heldout_x, heldout_y = all_heldout(space_path, test_x, test_y)
    records = [record for folder in folders for record in check_run(folder, args.top, args.repeats,
                                                                     heldout_x, heldout_y)]
    result = {"top": args.top, "repeats": args.repeats, "heldout_images": len(heldout_y), "models": records,
              "summary": summarise(records)}
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
