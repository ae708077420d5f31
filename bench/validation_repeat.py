"""The rank-agreement ceiling of a profile's validation: its candidates measured twice.

A profile's validation ranks its candidate sets (search-distribution, random per-layer and,
since 2026-11-30, uniform ones) by predicted latency and compares with their measured
latency (Kendall tau; the bars ask 0.9 for ONNX Runtime, 0.95 for torch). How much of the
shortfall is the machine's noise and how much the table? This measures the same candidates
of the sets the profile holds (``validation_sets``, seed 0) twice, exactly as
``profile --validate`` does (prepared together, interleaved rounds), and reports per set:
tau between the two measurements (what a perfect predictor could reach here), tau of the
shipped profile's cross-validated prediction against each, and tau of the measurement
stored in the profile against today's (the drift since it was profiled).
Prints and writes bench/results/validation_repeat.json (replacing the results of the
profiles measured, keeping the others').

    .venv/bin/python bench/validation_repeat.py [PROFILE ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from scipy.stats import kendalltau

from autocompress.hw.profile import STATISTICS, load_profile
from autocompress.hw.validate import by_set, flat, measure_candidates, validation_sets
from autocompress.models.space_file import load_space

ROOT = Path(__file__).resolve().parents[1]
PROFILES = ("cpu-onnxruntime", "cpu-onnxruntime-int8", "cpu-torch-fp32")
REPEATS = 2


def tau(a: list[float], b: list[float]) -> float:
    return round(float(kendalltau(a, b).statistic), 3)


def within_10(estimate: list[float], measured: list[float]) -> float:
    """Share of networks whose ``estimate`` (a prediction, another measurement) lies within
    +-10% of ``measured``."""
    return float(np.mean(np.abs(np.array(estimate) / np.array(measured) - 1) <= 0.10))


def repeat(path: Path) -> dict:
    profile = load_profile(path)
    if profile.validation is None:
        print(f"{path}: the profile has no validation to repeat (a modelled device, or not validated)", file=sys.stderr)
        sys.exit(2)
    space = load_space(ROOT / profile.space)
    device = profile.device
    stored = profile.validation.sets
    sets = {name: candidates for name, candidates in validation_sets(space, stored["search"].candidates).items()
            if name in stored}
    measurements, seconds = [], []
    for _ in range(REPEATS):
        start = time.perf_counter()
        timings = measure_candidates(space, flat(sets), device.runtime, device.batch_size, device.threads)
        measurements.append(by_set(sets, timings))
        seconds.append(round(time.perf_counter() - start, 1))
    result: dict = {"profile": str(path.relative_to(ROOT)), "seconds": seconds, "sets": {}}
    for name in sets:
        figures: dict = {}
        for statistic in STATISTICS:
            first, second = ([t[statistic] for t in m[name]] for m in measurements)
            shipped = stored[name].statistics[statistic]
            figures[statistic] = {
                "repeat_tau": tau(first, second),
                "repeat_within_10": within_10(second, first),
                "predicted_tau": [tau(shipped.corrected_ms, first), tau(shipped.corrected_ms, second)],
                "predicted_within_10": [within_10(shipped.corrected_ms, m) for m in (first, second)],
                "stored_measurement_tau": tau(shipped.measured_ms, first),
                "today_over_stored_median_ratio": round(float(np.median(np.array(first) / shipped.measured_ms)), 3),
            }
        result["sets"][name] = figures
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profiles", nargs="*", default=[str(ROOT / "hw_profiles" / f"{p}.json") for p in PROFILES])
    args = parser.parse_args()
    results = [repeat(Path(p).resolve()) for p in args.profiles]
    for result in results:
        for name, by_statistic in result["sets"].items():
            for statistic, f in by_statistic.items():
                print(f"{result['profile']:38s} {name:6s} {statistic:6s} repeat tau {f['repeat_tau']:.3f} "
                      f"(within 10% {f['repeat_within_10']:.2f}); prediction tau {f['predicted_tau'][0]:.3f} / "
                      f"{f['predicted_tau'][1]:.3f}, within 10% {f['predicted_within_10'][0]:.2f} / "
                      f"{f['predicted_within_10'][1]:.2f}; stored measurement tau {f['stored_measurement_tau']:.3f}, "
                      f"today / stored {f['today_over_stored_median_ratio']:.2f}")
    out = ROOT / "bench" / "results" / "validation_repeat.json"
    kept = json.loads(out.read_text())["results"] if out.is_file() else []
    measured_now = {r["profile"] for r in results}
    results = [r for r in kept if r["profile"] not in measured_now] + results
    out.write_text(json.dumps({"repeats": REPEATS, "results": results}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
