"""How stable is a verify measurement? The same front, timed as ``autocompress verify`` times
it, four times in one process: idle, idle, with a busy loop on the other vCPU, idle again.

``verify`` on the README demo measured every front model 16-39% faster than the median
profile predicted, and the same network once measured a third apart in two measurements.
This separates the statistics: per measurement, each model's median and minimum.
Needs a finished run (default: the README demo, ``results/demo``). Prints and writes
bench/results/verify_stability.json.

    .venv/bin/python bench/verify_stability.py [--run results/demo]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from autocompress.report.run import Run
from autocompress.verify.measure import measure, targets

ROOT = Path(__file__).resolve().parents[1]
CONDITIONS = ("idle-1", "idle-2", "other-vcpu-busy", "idle-3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, default=ROOT / "results" / "demo")
    args = parser.parse_args()
    plan = targets(Run.load(args.run))
    measurements = {}
    for condition in CONDITIONS:
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if "busy" in condition else None
        try:
            start = time.perf_counter()
            verification = measure(plan)
            wall = time.perf_counter() - start
        finally:
            if busy is not None:
                busy.kill()
        models = verification.front + ([verification.float_baseline] if verification.float_baseline else [])
        measurements[condition] = {"wall_s": round(wall, 1), "models": [
            {"trial": m.trial, "predicted_median_ms": round(m.predicted_ms["median"], 3),
             "median_ms": round(m.measured_ms["median"], 3), "min_ms": round(m.measured_ms["min"], 3)}
            for m in models]}
        print(condition, json.dumps(measurements[condition]), flush=True)
    spread = {}
    for statistic in ("median_ms", "min_ms"):
        ratios = []
        for index in range(len(measurements[CONDITIONS[0]]["models"])):
            values = [measurements[c]["models"][index][statistic] for c in CONDITIONS]
            ratios.append(max(values) / min(values))
        spread[statistic] = {"max_over_min_per_model": [round(r, 3) for r in ratios],
                             "median_ratio": round(statistics.median(ratios), 3)}
    print(json.dumps(spread, indent=1))
    out = ROOT / "bench" / "results" / "verify_stability.json"
    out.write_text(json.dumps({"run": str(args.run), "conditions": list(CONDITIONS),
                               "measurements": measurements, "spread_across_conditions": spread}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
