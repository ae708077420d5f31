"""Accuracy of each uniform knob on the base network, before and after a short fine-tune.

Trains (or reuses) the default space's base network, then applies uniform 8/4/2-bit
weights (8-bit activations), 50% channel pruning and rank 0.5 to it, and measures held-out
accuracy without fine-tune and after the space's short distillation fine-tune. Prints a
table and writes bench/results/knobs_accuracy.json.

    .venv/bin/python bench/knobs_accuracy.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from autocompress.base import ensure_base
from autocompress.data import load_splits
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space
from autocompress.pipeline import evaluate_candidate
from autocompress.tasks.classification import ClassificationTask

ROOT = Path(__file__).resolve().parents[1]
POLICIES = {
    "uniform-8bit": {"weight_bits": 8, "activation_bits": 8},
    "uniform-4bit": {"weight_bits": 4, "activation_bits": 8},
    "uniform-2bit": {"weight_bits": 2, "activation_bits": 8},
    "channel-50": {"sparsity": 0.5, "sparsity_kind": "channel"},
    "rank-0.5": {"rank_ratio": 0.5},
}


def main() -> None:
    torch.set_num_threads(1)
    space = load_space(ROOT / "search_spaces" / "mobilenet_digits.yaml")
    splits = load_splits(space.data)
    base, info = ensure_base(space, ClassificationTask(space, splits), ROOT / "results" / "_base")
    print(f"base: accuracy {info['accuracy']:.4f}, trained in {info['train_seconds']:.1f} s")
    rows = []
    for name, policy in POLICIES.items():
        candidate = family_of(space).uniform_candidate(family_of(space).largest_arch(), **policy)
        _, result = evaluate_candidate(space, candidate, base, ClassificationTask(space, splits), seed=0)
        rows.append({"policy": name, "accuracy_before": result.accuracy_before, "accuracy_after": result.accuracy,
                     "size_kb": result.size_bytes / 1024, "finetune_seconds": result.finetune_seconds})
        print(f"{name:14s} before {result.accuracy_before:.4f}  after {result.accuracy:.4f}  "
              f"size {result.size_bytes / 1024:7.1f} KB  fine-tune {result.finetune_seconds:5.1f} s", flush=True)
    out = ROOT / "bench" / "results" / "knobs_accuracy.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"base": info, "finetune_epochs": space.training.finetune_epochs,
                               "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
