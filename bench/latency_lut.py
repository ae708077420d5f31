"""How well latency lookup tables predict measured end-to-end latency, per runtime.

For each runtime it profiles the default space from scratch (every op signature timed),
then measures random candidates end to end and compares: share within +-10%, MAPE and
Kendall's tau of the raw LUT sum and of the cross-validated correction, plus the tau of
FLOPs (MACs) alone. Writes bench/results/latency_lut.json; with --ship, also copies each
profile to hw_profiles/cpu-RUNTIME.json. Runtimes not run keep their earlier results.

    .venv/bin/python bench/latency_lut.py [--runtimes torch-fp32 onnxruntime-int8] [--validate 40]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from autocompress.hw.profiler import measure_profile
from autocompress.hw.runtimes import measured_runtime_names
from autocompress.hw.validate import CALLS_PER_ROUND, ROUNDS
from autocompress.models.space_file import load_space

ROOT = Path(__file__).resolve().parents[1]
SPACE = "search_spaces/mobilenet_digits.yaml"


def save(out: Path, profile, rows: dict) -> None:
    """Merge ``rows`` into the results file (after each runtime, so a stopped run keeps them)."""
    previous = json.loads(out.read_text()) if out.is_file() else {}
    report = {"space": SPACE, "host_cpu": profile.device.host_cpu,
              "host_threads": profile.device.host_threads,
              "runtimes": {**previous.get("runtimes", {}), **rows}}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")


def profile_row(profile, wall: float) -> dict:
    """The figures of a measured and validated profile (``wall``: seconds it took), per
    validation set (search distribution, random per-layer) and statistic."""
    validation = profile.validation
    return {
        "entries": len(profile.entries),
        "batch_size": profile.device.batch_size,
        "threads": profile.device.threads,
        "clock": profile.device.clock,
        "timed_calls_per_candidate": ROUNDS * CALLS_PER_ROUND,
        "statistic": profile.statistic,
        "sets": {name: {"candidates": figures.candidates, "statistics": {
            statistic: {"raw": stats.raw.model_dump(), "corrected": stats.corrected.model_dump(),
                        "flops_tau": stats.flops_tau}
            for statistic, stats in figures.statistics.items()}}
                 for name, figures in validation.sets.items()},
        "table_seconds": profile.profiling_seconds,
        "validation_seconds": validation.seconds,
        "profiling_wall_seconds": wall,
    }


def print_row(label: str, row: dict) -> None:
    print(f"{label:17s} {row['entries']:5d} entries in {row['table_seconds']:6.1f} s "
          f"(+{row['validation_seconds']:.0f} s validating)")
    for name, figures in row["sets"].items():
        print(f"  {name} candidates ({figures['candidates']}):")
        for statistic, stats in figures["statistics"].items():
            for kind in ("raw", "corrected"):
                fig = stats[kind]
                print(f"    {statistic:6s} {kind:9s} within +-10% {100 * fig['within_10']:5.1f}%  MAPE "
                      f"{fig['mape']:5.1f}%  tau {fig['kendall_tau']:.3f}")
            print(f"    {statistic:6s} FLOPs     tau {stats['flops_tau']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runtimes", nargs="+", default=measured_runtime_names(), choices=measured_runtime_names())
    parser.add_argument("--validate", type=int, default=40, help="candidates of each set measured end to end")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--ship", action="store_true", help="copy the profiles to hw_profiles/")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "latency_lut.json")
    args = parser.parse_args()
    space = load_space(ROOT / SPACE)
    for runtime in args.runtimes:
        name = f"cpu-{runtime}"
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.json"
            start = time.perf_counter()
            profile = measure_profile(space, SPACE, runtime, name, path, threads=1,
                                      batch_size=args.batch_size, validate_count=args.validate)
            wall = time.perf_counter() - start
            if args.ship:
                shutil.copy(path, ROOT / "hw_profiles" / path.name)
        row = profile_row(profile, wall)
        print_row(runtime, row)
        save(args.out, profile, {runtime: row})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
