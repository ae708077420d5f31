"""``torch-fp32``: the frozen model run eagerly by torch, in float."""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from autocompress.compress.freeze import freeze
from autocompress.hw.ops import FLOAT, BitsRule
from autocompress.hw.runtimes.registry import MeasuredRuntime, register_runtime

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


@register_runtime
class TorchFp32(MeasuredRuntime):
    """Eager torch has no int8 kernels here and fuses nothing beyond a ``ConvBNAct`` unit."""

    name = "torch-fp32"
    default_device = "cpu-torch-fp32"

    @property
    def bits_rule(self) -> BitsRule:
        return FLOAT

    def settings(self) -> dict[str, str]:
        return {"torch": torch.__version__, "allocator": tune_allocator()}

    def prepare(self, model: nn.Module, shapes: Sequence[tuple[int, ...]], threads: int,
                int8: set[str] | None = None, isolated: bool = False) -> Callable[[], object]:
        tune_allocator()
        torch.set_num_threads(threads)
        frozen = freeze(model)
        rng = np.random.default_rng(0)
        inputs = [torch.from_numpy(rng.standard_normal(shape).astype(np.float32)) for shape in shapes]

        def run_torch() -> object:
            with torch.inference_mode():
                return frozen(*inputs)

        return run_torch
