"""Runtimes a profile measures on, and the timing of one callable.

Each runtime turns a torch module into a zero-argument callable that runs one batch:
``torch-fp32`` runs the frozen model eagerly, ``onnxruntime`` its float ONNX export,
``onnxruntime-int8`` the ONNX Runtime static QDQ int8 quantization of that export, where
only the convs/linears whose kernel precision is int8 (``BitsRule``) are quantized.
"""

from __future__ import annotations

import ctypes
import functools
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from autocompress.compress.freeze import freeze
from autocompress.compress.quantize import activation_bits_of, weight_bits_of
from autocompress.hw import bundle_runner as runner
from autocompress.hw.onnx_export import (
    OPSET,
    QUANTIZED_OPS,
    add_boundary_qdq,
    export_onnx,
    int8_weights_need_reduce_range,
    quantize_onnx_int8,
)
from autocompress.hw.signatures import BitsRule

RUNTIMES = ("torch-fp32", "onnxruntime", "onnxruntime-int8")
WARMUP_E2E = 10
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3


@functools.cache
def tune_allocator() -> str:
    """Keep freed activations in glibc's heap instead of returning them to the kernel.

    Eager torch allocates every activation anew; with glibc's defaults a network's larger
    activations are mmap-ed and trimmed on every call, so each call page-faults them in
    again, which made whole networks ~40% slower (in CPU time) than the sum of their ops
    timed alone. Inference servers avoid this with jemalloc/tcmalloc; this does the same
    for the profiling process (and is recorded in the profile). Returns the setting.
    """
    try:
        libc = ctypes.CDLL(None)
        tuned = all(libc.mallopt(option, value) == 1 for option, value in (
            (_M_MMAP_THRESHOLD, 32 << 20), (_M_TRIM_THRESHOLD, 1 << 30), (_M_TOP_PAD, 64 << 20)))
    except (OSError, AttributeError):
        tuned = False
    return "glibc malloc: mmap threshold 32 MiB, no trimming" if tuned else "system default"


def runtime_settings(runtime: str) -> dict[str, str]:
    """Versions and settings a profile records next to its runtime."""
    if runtime == "torch-fp32":
        return {"torch": torch.__version__, "allocator": tune_allocator()}
    settings = {"onnxruntime": ort.__version__, "onnx_opset": str(OPSET)}
    if runtime == "onnxruntime-int8":
        settings["int8_weights"] = ("7-bit (reduce_range: this CPU has no VNNI)"
                                    if int8_weights_need_reduce_range() else "8-bit")
    return settings


def module_path(node_name: str) -> str:
    """Module path of an ONNX node named by torch's exporter scopes.

    ``/stages/stages.3/stages.3.0/expand/conv/conv.0/Conv`` -> ``stages.3.0.expand.conv.0``:
    a scope that extends the previous one (``conv`` -> ``conv.0``) replaces it.
    """
    scopes = node_name.strip("/").split("/")[:-1]
    path: list[str] = []
    for scope in scopes:
        if path and scope.startswith(path[-1] + "."):
            path[-1] = scope
        else:
            path.append(scope)
    return ".".join(path)


def int8_layers(model: nn.Module, rule: BitsRule) -> set[str]:
    """Paths of the convs/linears of a (not yet frozen) model that run as int8."""
    return {name for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))
            and rule.kernel_bits(weight_bits_of(m), activation_bits_of(m)) == (8, 8)}


def _float_nodes(onnx_path: Path, quantized: set[str]) -> list[str]:
    nodes = [n for n in onnx.load(str(onnx_path)).graph.node if n.op_type in QUANTIZED_OPS]
    return [n.name for n in nodes if module_path(n.name) not in quantized]


def write_onnx(runtime: str, model: nn.Module, shape: tuple[int, ...], folder: Path,
               int8: set[str] | None = None, isolated: bool = False) -> Path:
    """``model`` as the ONNX file ``runtime`` runs (float, or int8 QDQ), in ``folder``.

    ``int8`` lists the layer paths to quantize (``onnxruntime-int8`` only); ``None`` means
    every conv/linear, an empty set none. An ``isolated`` float op of the int8 runtime is
    wrapped in the quantize/dequantize pairs it sits between inside an int8 network.
    """
    path = export_onnx(model, shape, folder / "float.onnx")
    if runtime != "onnxruntime-int8":
        return path
    if int8 == set():
        return add_boundary_qdq(path, folder / "boundary.onnx") if isolated else path
    exclude = _float_nodes(path, int8) if int8 is not None else []
    calibration = np.random.default_rng(1).standard_normal((shape[0] * 2, *shape[1:]))
    return quantize_onnx_int8(path, folder / "int8.onnx", calibration.astype(np.float32),
                              nodes_to_exclude=exclude)


def prepare(runtime: str, model: nn.Module, shape: tuple[int, ...], threads: int,
            int8: set[str] | None = None, isolated: bool = False) -> Callable[[], object]:
    """A callable running one batch of ``shape`` through ``model`` on ``runtime``."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}")
    if runtime == "torch-fp32":
        tune_allocator()
        torch.set_num_threads(threads)
        frozen = freeze(model)
        example = torch.from_numpy(
            np.random.default_rng(0).standard_normal(shape).astype(np.float32))

        def run_torch() -> object:
            with torch.inference_mode():
                return frozen(example)

        return run_torch
    with tempfile.TemporaryDirectory() as tmp:
        path = write_onnx(runtime, model, shape, Path(tmp), int8, isolated)
        session = runner.open_session(path, threads)
    return runner.session_runner(session, list(shape))
