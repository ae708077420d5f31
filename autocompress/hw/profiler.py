"""Measure a LUT: every op signature of a space, timed on a runtime, resumable.

Each signature becomes a small torch module with exactly that kernel (``kernels.op_module``:
a conv with its batch norm and ReLU, a squeeze-excite gate, a conv with the residual add
fused into it, ...), prepared on the runtime like a whole network would be, warmed up and timed. Signatures
are prepared a chunk at a time and timed in interleaved rounds over the chunk
(``time_interleaved`` says why). Finished chunks go to a
side file next to the output, written atomically, so an interrupted run resumes there.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from autocompress.errors import UserInputError
from autocompress.hw.bundle_runner import summarise, time_interleaved
from autocompress.hw.fixed_ops import UntimeableOpError
from autocompress.hw.kernels import op_int8, op_module, op_shapes
from autocompress.hw.ops import FIXED, OpSignature
from autocompress.hw.profile import (
    SCHEMA_VERSION,
    Device,
    Entry,
    HardwareProfile,
    Statistic,
    load_profile,
    save_profile,
    write_json_atomic,
)
from autocompress.hw.runtimes import MeasuredRuntime, measured_runtime
from autocompress.hw.signatures import space_signatures
from autocompress.hw.validate import validate
from autocompress.progress import progress_bar
from autocompress.space import SearchSpace

WARMUP = 5
ROUNDS = 8
CALLS_PER_ROUND = 5
CHUNK = 1024
"""Signatures prepared and timed together (an ONNX Runtime session holds ~1.5 MB); the side
file is rewritten after each chunk."""
TIMING = (f"{WARMUP} warm-up calls, then {ROUNDS} interleaved rounds of {CALLS_PER_ROUND} calls "
          f"over chunks of up to {CHUNK} ops")


def prepare_op(runtime: MeasuredRuntime, signature: OpSignature, batch_size: int,
               threads: int) -> tuple[Callable[[], object], dict[str, bool]]:
    """A callable running one batch through the kernel of ``signature`` on ``runtime``, and
    the ``Entry`` layout fields of that kernel. A fixed op that the runtime cannot prepare
    or run alone is one line naming it (``UntimeableOpError``)."""
    try:
        run, (reorders_input, reorders_output) = runtime.prepare_kernel(
            op_module(signature).eval(), op_shapes(signature, batch_size), threads, int8=op_int8(signature),
            quantized_io=signature.quantized_io)
        if signature.op == FIXED:
            run()
    except Exception as error:  # any failure of a fixed op's callee: named, not a traceback
        if signature.op != FIXED:
            raise
        first = (str(error).strip().splitlines() or [""])[0]
        raise UntimeableOpError(f"op {signature.key} cannot be timed alone on {runtime.name}: "
                                f"{type(error).__name__}: {first}") from None
    return run, {"reorders_input": reorders_input, "reorders_output": reorders_output}


def partial_path(out: Path) -> Path:
    """Side file holding the measurements of an unfinished profile run."""
    return out.with_name(out.name + ".partial")


def load_partial(out: Path, settings: dict) -> dict[str, Entry]:
    """Entries measured by an interrupted run with the same settings (else none)."""
    path = partial_path(out)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if data.get("settings") != settings:
        return {}
    return {key: Entry(**value) for key, value in data["entries"].items()}


def measure_table(runtime: MeasuredRuntime, signatures: Iterable[OpSignature], out: Path, settings: dict,
                  known: dict[str, Entry]) -> dict[str, Entry]:
    """Measure every signature not in ``known`` (or the side file), saving after each chunk.

    The progress bar counts one step per op prepared and one per op per timing round.
    """
    entries = {**known, **load_partial(out, settings)}
    todo = [s for s in signatures if s.key not in entries]
    threads = settings["threads"]
    with progress_bar(total=len(todo) * (1 + ROUNDS), desc=f"ops on {runtime.name}", unit="step") as bar:
        for begin in range(0, len(todo), CHUNK):
            chunk = todo[begin:begin + CHUNK]
            runs, layouts = [], []
            for signature in chunk:
                run, layout = prepare_op(runtime, signature, settings["batch_size"], threads)
                runs.append(run)
                layouts.append(layout)
                bar.update()
            timed = time_interleaved(runs, ROUNDS, CALLS_PER_ROUND, threads, WARMUP,
                                     on_round=functools.partial(bar.update, len(chunk)))
            entries.update((s.key, Entry(**summarise(samples), **layout))
                           for s, samples, layout in zip(chunk, timed, layouts, strict=True))
            write_json_atomic(partial_path(out), {
                "settings": settings,
                "entries": {k: e.model_dump() for k, e in entries.items()},
            })
    return entries


def _existing(out: Path, runtime: str, threads: int, batch_size: int,
              runtime_settings: dict[str, str]) -> HardwareProfile | None:
    """A readable profile already at ``out`` measured with the same settings, the runtime's
    own included (its entries are kept); an unreadable or outdated one is replaced, so a
    table whose ops were timed another way (another ONNX Runtime, another int8 export) is
    measured again in full."""
    if not out.is_file():
        return None
    try:
        profile = load_profile(out)
    except UserInputError:
        return None
    device = profile.device
    same = ((device.runtime, device.threads, device.batch_size, device.settings)
            == (runtime, threads, batch_size, runtime_settings))
    return profile if same else None


def measure_profile(space: SearchSpace, space_path: str, runtime: str, name: str, out: Path,
                    threads: int, batch_size: int, validate_count: int,
                    statistic: Statistic = "median") -> HardwareProfile:
    """Measure every signature of ``space`` on ``runtime``, validate, and save to ``out``.

    Entries of a profile already at ``out`` with the same settings are kept, so re-running
    the command after a space grows measures only what is new.
    """
    start = time.perf_counter()
    timed_on = measured_runtime(runtime)
    rule = timed_on.bits_rule
    signatures = space_signatures(space, rule)
    runtime_settings = timed_on.settings() | {"timing": TIMING}
    previous = _existing(out, runtime, threads, batch_size, runtime_settings)
    known = previous.entries if previous is not None else {}
    settings = {"runtime": runtime, "threads": threads, "batch_size": batch_size,
                "space": space.model_dump(mode="json")}
    entries = measure_table(timed_on, signatures, out, settings, known)
    profile = HardwareProfile(
        schema_version=SCHEMA_VERSION,
        device=Device.on_this_host(name, "measured", runtime, threads, batch_size).model_copy(
            update={"settings": runtime_settings}),
        space=space_path, native_weight_bits=list(rule.weight),
        native_activation_bits=list(rule.activation), activation_bits_follow_weights=rule.follow,
        native_sparsity=["channel"], entries=entries, statistic=statistic,
        profiling_seconds=time.perf_counter() - start)
    if validate_count:
        validation, corrections = validate(space, profile, validate_count)
        profile = profile.model_copy(update={"validation": validation, "corrections": corrections})
    save_profile(profile, out)
    partial_path(out).unlink(missing_ok=True)
    return profile
