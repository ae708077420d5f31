"""Profiling bundles for devices without autocompress, and importing what they measured.

A bundle holds every op kernel of a space and the validation networks as ONNX files for
the chosen ONNX Runtime flavour, a ``manifest.json`` and ``runner.py`` (see
``bundle_runner``). The runner's CSV comes back with ``autocompress profile --import``,
which rebuilds the same validation candidates from the seed and scores the table.
"""

from __future__ import annotations

import csv
import io
import shutil
import tempfile
from pathlib import Path

from autocompress.errors import UserInputError
from autocompress.hw import bundle_runner
from autocompress.hw.kernels import op_int8, op_module, op_shapes
from autocompress.hw.ops import BitsRule
from autocompress.hw.profile import (
    DISTRIBUTIONS,
    SCHEMA_VERSION,
    TIMING_FIELDS,
    Device,
    Entry,
    HardwareProfile,
    Statistic,
    utc_now,
    write_json_atomic,
)
from autocompress.hw.profiler import CALLS_PER_ROUND, CHUNK, ROUNDS, WARMUP
from autocompress.hw.runtimes import runtime_named, runtime_names
from autocompress.hw.runtimes.onnx import OnnxRuntime, int8_layers
from autocompress.hw.signatures import space_signatures
from autocompress.hw.validate import Timing, by_set, flat, score, validation_sets
from autocompress.inputs import read_text, validated
from autocompress.models.family import family_of
from autocompress.progress import progress_bar
from autocompress.space import SearchSpace

NET_PREFIX = "net/"


def onnx_runtime(name: str, where: str) -> OnnxRuntime:
    """The registered runtime ``name``, which must run ONNX files (a bundle's runner does)."""
    runtime = runtime_named(name, where)
    if not isinstance(runtime, OnnxRuntime):
        allowed = [n for n in runtime_names() if isinstance(runtime_named(n), OnnxRuntime)]
        raise UserInputError(f"{where}: runtime must be one of {', '.join(allowed)}, "
                             f"got {name!r} (a bundle runs ONNX models)")
    return runtime


def _write(runtime: OnnxRuntime, model, shapes: list[tuple[int, ...]], target: Path,
           int8: set[str] | None, isolated: bool, quantized_io: tuple[bool, bool] = (False, False)) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        shutil.move(runtime.write_onnx(model, shapes, Path(tmp), int8, isolated, quantized_io), target)


def export_bundle(space: SearchSpace, runtime: str, folder: Path, batch_size: int, threads: int,
                  validate_count: int, seed: int = 0) -> Path:
    """Write a self-contained bundle for ``runtime`` into ``folder``; returns the manifest."""
    target = onnx_runtime(runtime, "--export-bundle")
    rule = target.bits_rule
    (folder / "ops").mkdir(parents=True, exist_ok=True)
    (folder / "nets").mkdir(exist_ok=True)
    models = []
    for index, signature in enumerate(progress_bar(iterable=space_signatures(space, rule), desc="bundle ops")):
        file = f"ops/{index:05d}.onnx"
        _write(target, op_module(signature).eval(), op_shapes(signature, batch_size), folder / file,
               op_int8(signature), isolated=True, quantized_io=signature.quantized_io)
        models.append({"key": signature.key, "file": file})
    shape = space.input_shape(batch_size)
    candidates = flat(validation_sets(space, validate_count, seed))
    for index, candidate in enumerate(progress_bar(iterable=candidates, desc="bundle networks")):
        model = family_of(space).build_compressed(candidate)
        file = f"nets/{index:03d}.onnx"
        _write(target, model, [shape], folder / file, int8_layers(model, rule), isolated=False)
        models.append({"key": f"{NET_PREFIX}{index}", "file": file})
    shutil.copy(bundle_runner.__file__, folder / "runner.py")
    manifest = folder / "manifest.json"
    write_json_atomic(manifest, {"runtime": runtime, "threads": threads, "batch_size": batch_size,
                                 "warmup": WARMUP, "rounds": ROUNDS, "calls": CALLS_PER_ROUND,
                                 "chunk": CHUNK, "seed": seed,
                                 "space": space.name, "models": models})
    return manifest


def _read_rows(path: Path) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(read_text(path, "runner CSV"), newline=""))
    try:
        absent = set(bundle_runner.CSV_FIELDS) - set(reader.fieldnames or [])
        if absent:
            raise UserInputError(f"{path}: not a runner CSV, missing columns {sorted(absent)}")
        rows = list(reader)
    except csv.Error as error:
        raise UserInputError(f"{path}: not a readable CSV ({error})") from None
    if not rows:
        raise UserInputError(f"{path}: runner CSV has no rows")
    return rows


def _timings(path: Path, rows: list[dict[str, str]]) -> tuple[dict[str, Entry], dict[str, Entry]]:
    """(op entries, network entries) of the rows, each validated (finite positive times)."""
    ops: dict[str, Entry] = {}
    nets: dict[str, Entry] = {}
    for line, row in enumerate(rows, start=2):
        key = row["key"] or ""
        entry = validated(Entry, {name: row[name] for name in TIMING_FIELDS}, f"{path}: line {line}")
        (nets if key.startswith(NET_PREFIX) else ops)[key] = entry
    return ops, nets


def _check_signatures(path: Path, space: SearchSpace, rule: BitsRule, keys: set[str]) -> None:
    """Every op row is a signature of ``space`` and every signature of it has a row."""
    expected = {s.key for s in space_signatures(space, rule)}
    for problem, found in (("unknown op signature(s) (not of this space and runtime)", keys - expected),
                           ("op signature(s) of the space without a row", expected - keys)):
        if found:
            listed = sorted(found)
            more = f" and {len(listed) - 5} more" if len(listed) > 5 else ""
            raise UserInputError(f"{path}: {len(listed)} {problem}: {', '.join(listed[:5])}{more}; "
                                 f"run runner.py of a bundle exported for {space.name} with this runtime")


def _network_ms(path: Path, nets: dict[str, Entry]) -> list[Timing]:
    """The validation networks' latencies in index order (rows ``net/0`` .. ``net/N-1``)."""
    expected = [f"{NET_PREFIX}{index}" for index in range(len(nets))]
    if sorted(nets) != sorted(expected):
        raise UserInputError(f"{path}: network rows must be {NET_PREFIX}0 .. {NET_PREFIX}{len(nets) - 1}, "
                             f"got {', '.join(sorted(nets)[:5])}")
    return [{"median": nets[key].median_ms, "min": nets[key].min_ms} for key in expected]


def import_csv(space: SearchSpace, space_path: str, path: Path, name: str,
               statistic: Statistic = "median", seed: int = 0) -> HardwareProfile:
    """The profile measured by a bundle's runner: LUT entries and validation figures.

    The CSV must time every op signature of ``space`` (and nothing else) with finite
    positive figures; anything else is one line naming the file.
    """
    rows = _read_rows(path)
    first = rows[0]
    entries, nets = _timings(path, rows)
    device = validated(Device, {"name": name, "kind": "measured", "runtime": first["runtime"],
                                "threads": first["threads"], "clock": first["clock"],
                                "batch_size": first["batch_size"], "host_cpu": first["host_cpu"],
                                "host_threads": first["host_threads"], "date": utc_now()}, f"{path}: line 2")
    rule = onnx_runtime(device.runtime, f"{path}: line 2").bits_rule
    _check_signatures(path, space, rule, set(entries))
    network_ms = _network_ms(path, nets)
    profile = HardwareProfile(schema_version=SCHEMA_VERSION, device=device, space=space_path,
                              native_weight_bits=list(rule.weight),
                              native_activation_bits=list(rule.activation),
                              activation_bits_follow_weights=rule.follow,
                              native_sparsity=["channel"], entries=entries, statistic=statistic)
    if len(network_ms) < 2 * len(DISTRIBUTIONS):  # two of each validation set at least
        return profile
    sets = validation_sets(space, len(network_ms) // len(DISTRIBUTIONS), seed)
    validation, corrections = score(space, profile, sets, by_set(sets, network_ms), 0.0, seed)
    return profile.model_copy(update={"validation": validation, "corrections": corrections})
