"""How long the supernet base is trained, and what its subnets are worth after the search's fine-tune.

For each ``base_epochs``, trains the default space's base as a supernet on the search
benchmark's data (80% of digits; the other 20% held out as test, as in
``bench/search_quality.py``), then builds compressed candidates from it exactly as a
search trial does (inherit, recalibrate, calibrate, 2-epoch distillation fine-tune) and
measures each on validation and on the held-out test set: the base architecture at uniform
W4A8 (the BitFusion benchmark's best baseline), W3A8 and W2A8, the smallest architecture at
W4A8, and four random architectures at W3A8. A base too short-trained leaves the subnets a
search draws far below the base architecture, so no search can find a faster model close
to the baseline's accuracy.

Prints a table and writes bench/results/base_epochs.json.

    .venv/bin/python bench/base_epochs.py --epochs 20 40 60 100
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
from search_quality import heldout_space
from search_runs import ROOT

from autocompress.base import train_base
from autocompress.data import load_splits
from autocompress.models.family import family_of
from autocompress.pipeline import evaluate_candidate
from autocompress.space import load_space
from autocompress.train import accuracy

RANDOM_ARCHS, ARCH_SEED = 4, 1


def candidates(space) -> dict:
    family = family_of(space)
    largest, smallest = family.largest_arch(), family.smallest_arch()
    chosen = {f"base arch W{bits}A8": family.uniform_candidate(largest, weight_bits=bits, activation_bits=8)
              for bits in (4, 3, 2)}
    chosen["smallest arch W4A8"] = family.uniform_candidate(smallest, weight_bits=4, activation_bits=8)
    rng = random.Random(ARCH_SEED)
    for index in range(RANDOM_ARCHS):
        chosen[f"random arch {index} W3A8"] = family.uniform_candidate(family.random_arch(rng), weight_bits=3,
                                                                       activation_bits=8)
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", nargs="+", type=int, default=[20, 40, 60, 100])
    args = parser.parse_args()
    torch.set_num_threads(2)
    space_path, test_x, test_y = heldout_space()
    space = load_space(space_path)
    splits = load_splits(space.data)
    results = []
    for epochs in args.epochs:
        trained = space.model_copy(update={"training": space.training.model_copy(update={"base_epochs": epochs})})
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            base, info = train_base(trained, splits, Path(folder) / "base.pt")
            seconds = time.perf_counter() - start
        rows = [{"model": "base (float)", "val_accuracy": round(info["accuracy"], 4),
                 "test_accuracy": round(accuracy(base, test_x, test_y), 4)}]
        for name, candidate in candidates(trained).items():
            model, evaluation = evaluate_candidate(trained, candidate, base, splits, seed=0)
            rows.append({"model": name, "val_accuracy_before_finetune": round(evaluation.accuracy_before, 4),
                         "val_accuracy": round(evaluation.accuracy, 4),
                         "test_accuracy": round(accuracy(model, test_x, test_y), 4)})
        results.append({"base_epochs": epochs, "train_seconds": round(seconds, 1), "models": rows})
        print(f"{epochs} epochs, trained in {seconds:.0f} s", flush=True)
        for row in rows:
            print(f"  {row['model']:>22}  val {row['val_accuracy']:.3f}  test {row['test_accuracy']:.3f}", flush=True)
    out = ROOT / "bench" / "results" / "base_epochs.json"
    out.write_text(json.dumps({"data": "80% of digits (20% held out as test), the search benchmark's split",
                               "threads": 2, "finetune_epochs": space.training.finetune_epochs,
                               "results": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
