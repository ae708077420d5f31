"""Cheap fidelity: a candidate's accuracy with inherited weights, batch-norm recalibration and no
fine-tune, and what it costs on one core; and how well it ranks the fine-tuned accuracy.

For candidates drawn as the search draws them (its per-group parameters, uniformly), times
the cheap evaluation (build, inherit from the base, compress, recalibrate batch norm,
calibrate activation ranges, validation accuracy: ``accuracy_before`` of every trial) and,
for comparison, the space's full fine-tune, one torch thread, on an otherwise idle machine.
Prints and writes bench/results/cheap_fidelity.json.

    .venv/bin/python bench/cheap_fidelity.py --candidates 12
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time

import torch
from scipy.stats import kendalltau
from search_runs import ROOT, SPACE

from autocompress.base import ensure_base
from autocompress.compress.quantize import calibrate_activations
from autocompress.data import load_splits
from autocompress.models.family import family_of
from autocompress.search.params import suggest_candidate
from autocompress.space import load_space
from autocompress.train import accuracy, finetune, recalibrate_batchnorm


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    space = load_space(SPACE)
    splits = load_splits(space.data)
    base, _ = ensure_base(space, splits, ROOT / "results" / "_base")
    family = family_of(space)
    rng = random.Random(0)
    rows = []
    for _ in range(args.candidates):
        candidate = suggest_candidate(space, lambda _name, choices: rng.choice(choices))
        start = time.perf_counter()
        model = family.build_compressed(candidate, base)
        recalibrate_batchnorm(model, splits.train_x)
        calibrate_activations(model, [splits.train_x[:256]])
        cheap = accuracy(model, splits.val_x, splits.val_y)
        cheap_s = time.perf_counter() - start
        start = time.perf_counter()
        finetune(model, base, splits, space.training, seed=0)
        finetune_s = time.perf_counter() - start
        rows.append({"candidate_hash": candidate.hash, "cheap_accuracy": round(cheap, 4), "cheap_s": round(cheap_s, 3),
                     "finetuned_accuracy": round(accuracy(model, splits.val_x, splits.val_y), 4),
                     "finetune_s": round(finetune_s, 2)})
        print(rows[-1], flush=True)
    result = {"space": str(SPACE.relative_to(ROOT)), "threads": 1, "candidates": rows,
              "median_cheap_s": statistics.median(r["cheap_s"] for r in rows),
              "median_finetune_s": statistics.median(r["finetune_s"] for r in rows),
              "kendall_tau_cheap_vs_finetuned": round(float(kendalltau(
                  [r["cheap_accuracy"] for r in rows], [r["finetuned_accuracy"] for r in rows]).statistic), 3)}
    out = ROOT / "bench" / "results" / "cheap_fidelity.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print({k: v for k, v in result.items() if k != "candidates"})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
