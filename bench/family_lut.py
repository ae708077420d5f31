"""Latency tables for the other model families: the example user model and the ResNet family.

For each space it profiles every op signature of the space's family on one runtime (the
user model's ops from its torch.fx graph), validates the table on random candidates
measured end to end (share within +-10%, MAPE, Kendall's tau, raw and corrected), and
measures the example model unpruned and 50% channel-pruned (its coupled residual groups
pruned together). Writes bench/results/family_lut.json; with --ship, also copies each
profile to hw_profiles/RUNTIME-SPACE.json.

    .venv/bin/python bench/family_lut.py [--validate 40] [--runtime torch-fp32]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from latency_lut import print_row, profile_row

from autocompress.hw.profiler import measure_profile
from autocompress.hw.runtimes import measured_runtime_names
from autocompress.hw.validate import measure_candidates
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space

ROOT = Path(__file__).resolve().parents[1]
SPACES = ("examples/byo_model/space.yaml", "search_spaces/resnet_digits.yaml")
EXAMPLE = SPACES[0]


def pruning_speed(space_path: str, runtime: str, batch_size: int, statistic: str) -> dict:
    """Measured ms per batch of the space's base network, float and with 50% channel pruning."""
    space = load_space(ROOT / space_path)
    family = family_of(space)
    arch = family.largest_arch()
    candidates = [family.uniform_candidate(arch), family.uniform_candidate(arch, sparsity=0.5, sparsity_kind="channel")]
    unpruned, pruned = (timing[statistic] for timing in measure_candidates(space, candidates, runtime, batch_size, 1))
    return {"unpruned_ms": unpruned, "channel_50_ms": pruned, "speed_up": unpruned / pruned}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=list(SPACES))
    parser.add_argument("--runtime", default="torch-fp32", choices=measured_runtime_names())
    parser.add_argument("--validate", type=int, default=40, help="candidates measured end to end")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ship", action="store_true", help="copy the profiles to hw_profiles/")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "family_lut.json")
    args = parser.parse_args()
    report: dict = {"runtime": args.runtime, "spaces": {}}
    for space_path in args.spaces:
        space = load_space(ROOT / space_path)
        name = f"cpu-{args.runtime}-{space.name}"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.json"
            start = time.perf_counter()
            profile = measure_profile(space, space_path, args.runtime, name, path, threads=1,
                                      batch_size=args.batch_size, validate_count=args.validate)
            wall = time.perf_counter() - start
            if args.ship:
                shutil.copy(path, ROOT / "hw_profiles" / path.name)
        row = profile_row(profile, wall) | {"family": space.network.family}
        print_row(space.name, row)
        report["spaces"][space_path] = row
        report["host_cpu"] = profile.device.host_cpu
    if EXAMPLE in args.spaces:
        speed = pruning_speed(EXAMPLE, args.runtime, args.batch_size, "min")
        print(f"{EXAMPLE}: unpruned {speed['unpruned_ms']:.2f} ms, 50% coupled channel pruning "
              f"{speed['channel_50_ms']:.2f} ms per batch of {args.batch_size} ({speed['speed_up']:.2f}x)")
        report["example_pruning"] = speed
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
