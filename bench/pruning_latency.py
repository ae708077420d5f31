"""Measured latency of knobs on the base network: does compression really speed it up?

Runs eager torch (float, frozen) at one thread on the default space's base architecture,
uncompressed and with each uniform policy, at batch sizes 1 and 32; prints a table and
writes bench/results/pruning_latency.json. Weights are untrained: latency does not
depend on them.

    .venv/bin/python bench/pruning_latency.py
"""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import torch

from autocompress.compress.freeze import freeze
from autocompress.compress.size import model_size_bytes
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space

ROOT = Path(__file__).resolve().parents[1]
POLICIES = {
    "float": {},
    "channel-25": {"sparsity": 0.25, "sparsity_kind": "channel"},
    "channel-50": {"sparsity": 0.5, "sparsity_kind": "channel"},
    "channel-75": {"sparsity": 0.75, "sparsity_kind": "channel"},
    "unstructured-50": {"sparsity": 0.5, "sparsity_kind": "unstructured"},
    "rank-0.5": {"rank_ratio": 0.5},
    "rank-0.25": {"rank_ratio": 0.25},
}


@torch.inference_mode()
def median_ms(model: torch.nn.Module, x: torch.Tensor, repeats: int = 60, rounds: int = 5) -> tuple[float, float]:
    """Median and interquartile range of per-call latency over ``rounds`` timed blocks."""
    for _ in range(10):
        model(x)
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            model(x)
        samples.append((time.perf_counter() - start) * 1000 / repeats)
    quartiles = statistics.quantiles(samples, n=4)
    return statistics.median(samples), quartiles[2] - quartiles[0]


def main() -> None:
    torch.set_num_threads(1)
    space = load_space(ROOT / "search_spaces" / "mobilenet_digits.yaml")
    arch = family_of(space).largest_arch()
    rows = []
    for name, policy in POLICIES.items():
        model = family_of(space).build_compressed(family_of(space).uniform_candidate(arch, **policy))
        frozen = freeze(model)
        params = sum(p.numel() for p in frozen.parameters())
        row = {"policy": name, "params": params, "size_kb": model_size_bytes(model) / 1024}
        for batch in (1, 32):
            median, spread = median_ms(frozen, torch.randn(*space.input_shape(batch)))
            row[f"ms_batch{batch}"], row[f"iqr_ms_batch{batch}"] = median, spread
        rows.append(row)
        print(f"{name:16s} params {params:7d}  size {row['size_kb']:7.1f} KB  "
              f"batch1 {row['ms_batch1']:6.3f} ms  batch32 {row['ms_batch32']:7.3f} ms", flush=True)
    out = ROOT / "bench" / "results" / "pruning_latency.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "runtime": "torch-fp32 eager, 1 thread", "host": platform.processor() or platform.machine(),
        "date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
