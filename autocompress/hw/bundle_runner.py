"""Standalone runner of a profiling bundle: needs only Python 3, numpy and onnxruntime.

Copied into every bundle as ``runner.py``; on the target device run
``python runner.py [--threads T] [--out latency.csv]`` in the bundle folder. It times every
ONNX model listed in ``manifest.json`` (the op kernels and the validation networks), in
interleaved rounds over chunks of models (``time_interleaved``), and writes one CSV row per
model: key, median_ms, min_ms, spread_ms, samples, plus the settings, clock and host it ran
on. autocompress's own profiler uses the same session and timing functions.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort

CSV_FIELDS = ("key", "median_ms", "min_ms", "spread_ms", "samples", "runtime", "threads", "clock",
              "batch_size", "host_cpu", "host_threads")


def open_session(path: Path, threads: int, optimized: Path | None = None) -> ort.InferenceSession:
    """A CPU session with a fixed thread count, sequential execution, full optimisation;
    the graph as optimised is written to ``optimized`` if given."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized is not None:
        options.optimized_model_filepath = str(optimized)
        options.log_severity_level = 3  # not the warning that the file holds this CPU's layouts
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def clock_name(threads: int) -> str:
    """The clock latencies are read from.

    With one thread the work runs on the calling thread, and its CPU time is what the call
    costs on an idle core: unlike wall time it leaves out the time other processes hold the
    core, which on a shared machine otherwise inflates long calls far more than short ones.
    With several threads only wall time measures latency.
    """
    return "thread-cpu" if threads == 1 else "wall"


def time_calls(run: Callable[[], object], repeats: int, threads: int) -> list[float]:
    """Time of ``repeats`` single calls of ``run`` in ms, on ``clock_name(threads)``."""
    clock = time.thread_time if clock_name(threads) == "thread-cpu" else time.perf_counter
    samples = []
    for _ in range(repeats):
        start = clock()
        run()
        samples.append((clock() - start) * 1000.0)
    return samples


def time_interleaved(runs: Sequence[Callable[[], object]], rounds: int, calls: int, threads: int,
                     warmup: int, on_round: Callable[[], object] | None = None) -> list[list[float]]:
    """Samples (ms) of each callable: after ``warmup`` calls each, ``rounds`` passes over all
    of them, ``calls`` calls of each per pass; ``on_round`` is called after every pass.

    Why interleaved: on a shared or virtual machine the CPU slows down for seconds at a time
    (another tenant, frequency changes), and thread CPU time does not hide that. Timing each
    callable in one burst lets such a spell inflate every sample of the few it meets (seen
    here: single ops up to 2x, and the table's ranking of networks wrong); spread over
    rounds, a spell costs every callable a round or two, and the minimum comes from quiet
    rounds.
    """
    for run in runs:
        time_calls(run, warmup, threads)
    samples: list[list[float]] = [[] for _ in runs]
    for _ in range(rounds):
        for run, collected in zip(runs, samples, strict=True):
            collected.extend(time_calls(run, calls, threads))
        if on_round is not None:
            on_round()
    return samples


def summarise(samples_ms: list[float]) -> dict[str, float]:
    """Median, minimum, interquartile range and count of timed runs."""
    quartiles = statistics.quantiles(samples_ms, n=4) if len(samples_ms) > 1 else [0.0] * 3
    return {"median_ms": statistics.median(samples_ms), "min_ms": min(samples_ms),
            "spread_ms": quartiles[2] - quartiles[0], "samples": len(samples_ms)}


def random_input(rng: np.random.Generator, value: ort.NodeArg) -> np.ndarray:
    """Random data for a (fixed-shape) input: uint8 codes for a quantized one, else floats."""
    if value.type == "tensor(uint8)":
        return rng.integers(0, 256, value.shape, dtype=np.uint8)
    return rng.standard_normal(value.shape).astype(np.float32)


def session_runner(session: ort.InferenceSession) -> Callable[[], object]:
    """A call running one batch of random data through every input."""
    rng = np.random.default_rng(0)
    feeds = {i.name: random_input(rng, i) for i in session.get_inputs()}
    return lambda: session.run(None, feeds)


def host_cpu() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="default: the bundle's")
    parser.add_argument("--out", type=Path, default=Path("latency.csv"))
    args = parser.parse_args()
    folder = Path(__file__).resolve().parent
    manifest = json.loads((folder / "manifest.json").read_text())
    threads = args.threads or manifest["threads"]
    models, chunk = manifest["models"], manifest["chunk"]
    context = {"runtime": manifest["runtime"], "threads": threads, "clock": clock_name(threads),
               "batch_size": manifest["batch_size"], "host_cpu": host_cpu(), "host_threads": os.cpu_count() or 1}
    rows = []
    for begin in range(0, len(models), chunk):
        items = models[begin:begin + chunk]
        runs = [session_runner(open_session(folder / item["file"], threads)) for item in items]
        timed = time_interleaved(runs, manifest["rounds"], manifest["calls"], threads, manifest["warmup"])
        rows.extend({"key": item["key"], **summarise(samples), **context}
                    for item, samples in zip(items, timed, strict=True))
        print(f"\r{len(rows)}/{len(models)} timed", end="", flush=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    with tmp.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(args.out)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
