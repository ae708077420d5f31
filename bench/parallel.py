"""Search throughput with 1 and 2 Ray workers, and the share of wall time outside trials.

Runs ``autocompress search`` on the default space (digits, local Ray, random sampler so
that no candidate repeats, the space's 2 fine-tune epochs) once with each worker count.
Trials per hour count every evaluated trial (the 5 baselines included) over the whole
command's wall time: setup, Ray start-up, actor start-up and shutdown all count. The
share outside evaluation is 1 - (sum of trial durations) / (workers x wall time).
Prints a table and writes bench/results/parallel.json.

    .venv/bin/python bench/parallel.py --profile hw_profiles/cpu-torch-fp32.json --trials 16
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from search_runs import ROOT, run_search


def measure(workers: int, trials: int, profile: Path) -> dict:
    wall, rows = run_search(f"bench-parallel-{workers}w", profile, trials=trials, workers=workers, sampler="random")
    evaluated = sum(float(r["duration_s"]) for r in rows)
    return {"workers": workers, "trials": len(rows), "wall_s": round(wall, 1),
            "trials_per_hour": round(len(rows) / wall * 3600, 1),
            "mean_trial_s": round(evaluated / len(rows), 2),
            "outside_evaluation_share": round(1 - evaluated / (workers * wall), 3),
            "failed": sum(r["state"] == "FAIL" for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", type=Path, default=ROOT / "hw_profiles" / "cpu-torch-fp32.json")
    parser.add_argument("--trials", type=int, default=16, help="search trials per run (plus 5 baselines)")
    args = parser.parse_args()
    runs = [measure(workers, args.trials, args.profile) for workers in (1, 2)]
    speedup = runs[1]["trials_per_hour"] / runs[0]["trials_per_hour"]
    result = {"space": "search_spaces/mobilenet_digits.yaml", "profile": str(args.profile),
              "cpu_count": os.cpu_count(), "runs": runs, "speedup_2_vs_1": round(speedup, 2),
              "bars": {"speedup >= 1.6": speedup >= 1.6,
                       "outside share < 10% (2 workers)": runs[1]["outside_evaluation_share"] < 0.10}}
    print(f"{'workers':>7} {'trials':>6} {'wall s':>7} {'trials/h':>9} {'mean trial s':>12} {'outside':>8}")
    for run in runs:
        print(f"{run['workers']:>7} {run['trials']:>6} {run['wall_s']:>7} {run['trials_per_hour']:>9} "
              f"{run['mean_trial_s']:>12} {run['outside_evaluation_share']:>8.1%}")
    print(f"speedup 2 vs 1 workers: {speedup:.2f}x")
    out = ROOT / "bench" / "results" / "parallel.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
