"""Search throughput with 1 and 2 Ray workers, and the share of wall time outside trials.

Runs ``autocompress search`` on the default space (digits, local Ray, random sampler so
that no candidate repeats, the space's 2 fine-tune epochs) three times: 1 worker with one
torch thread, 1 worker with one thread per core (what ``--workers 1`` does by default), and
2 workers with one thread each (the default of ``--workers 2`` on 2 cores). The first pair
gives each worker the same resources, so their ratio is the scaling Ray delivers; the
second pair is what a user of this machine gains by running 2 workers instead of 1.
Trials per hour count every evaluated trial (the 5 baselines included) over the whole
command's wall time: setup, Ray start-up, actor start-up, the report and shutdown all
count. The share outside evaluation is 1 - (sum of trial durations) / (workers x wall time).
Prints a table and writes bench/results/parallel.json.

    .venv/bin/python bench/parallel.py --profile hw_profiles/cpu-torch-fp32.json --trials 40
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from search_runs import ROOT, run_search


def measure(workers: int, threads: int, trials: int, profile: Path) -> dict:
    wall, rows = run_search(f"bench-parallel-{workers}w{threads}t", profile, trials=trials, workers=workers,
                            threads=threads, sampler="random")
    evaluated = sum(float(r["duration_s"]) for r in rows)
    return {"workers": workers, "threads_per_worker": threads, "trials": len(rows), "wall_s": round(wall, 1),
            "trials_per_hour": round(len(rows) / wall * 3600, 1),
            "mean_trial_s": round(evaluated / len(rows), 2),
            "outside_evaluation_share": round(1 - evaluated / (workers * wall), 3),
            "failed": sum(r["state"] == "FAIL" for r in rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", type=Path, default=ROOT / "hw_profiles" / "cpu-torch-fp32.json")
    parser.add_argument("--trials", type=int, default=40, help="search trials per run (plus 5 baselines)")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    one_core, all_cores, two = (measure(w, t, args.trials, args.profile)
                                for w, t in ((1, 1), (1, cores), (2, max(1, cores // 2))))
    equal = two["trials_per_hour"] / one_core["trials_per_hour"]
    against_all = two["trials_per_hour"] / all_cores["trials_per_hour"]
    result = {"space": "search_spaces/mobilenet_digits.yaml", "profile": str(args.profile), "cpu_count": cores,
              "runs": [one_core, all_cores, two],
              "speedup_2_vs_1_same_threads_per_worker": round(equal, 2),
              "speedup_2_vs_1_with_all_cores": round(against_all, 2),
              "bars": {"speedup >= 1.6 (same threads per worker)": equal >= 1.6,
                       "speedup >= 1.6 (1 worker on all cores)": against_all >= 1.6,
                       "outside share < 10% (2 workers)": two["outside_evaluation_share"] < 0.10}}
    print(f"{'workers':>7} {'threads':>7} {'trials':>6} {'wall s':>7} {'trials/h':>9} {'mean trial s':>12} "
          f"{'outside':>8}")
    for run in result["runs"]:
        print(f"{run['workers']:>7} {run['threads_per_worker']:>7} {run['trials']:>6} {run['wall_s']:>7} "
              f"{run['trials_per_hour']:>9} {run['mean_trial_s']:>12} {run['outside_evaluation_share']:>8.1%}")
    print(f"speedup of 2 workers: {equal:.2f}x over 1 worker on one thread, "
          f"{against_all:.2f}x over 1 worker on {cores} threads")
    out = ROOT / "bench" / "results" / "parallel.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
