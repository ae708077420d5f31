"""Runtimes a profile is made for, as plug-ins registered by name.

A runtime says how a torch module is prepared to run one batch (eager torch, an ONNX
Runtime session on the float or int8 QDQ export), the settings a profile records with it,
its precision rule (``BitsRule``: which bit-widths have real kernels), whether its
latencies are measured here or modelled by a formula, and which consecutive ops it fuses
into one kernel (``FusionRule``, as data).

Adding a runtime: a ``Runtime`` (or ``MeasuredRuntime``) subclass decorated with
``@register_runtime`` in a module listed in ``BUILTIN_MODULES``.
"""

from autocompress.hw.runtimes.registry import (
    WARMUP_E2E,
    MeasuredRuntime,
    Runtime,
    measured_runtime,
    measured_runtime_names,
    register_runtime,
    runtime_named,
    runtime_names,
)

__all__ = ["WARMUP_E2E", "MeasuredRuntime", "Runtime", "measured_runtime", "measured_runtime_names",
           "register_runtime", "runtime_named", "runtime_names"]
