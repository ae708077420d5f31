"""The runtime interface and its registry (see the package docstring)."""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, ClassVar

from autocompress.errors import UserInputError

if TYPE_CHECKING:
    from torch import nn

    from autocompress.hw.ops import BitsRule

BUILTIN_MODULES = ("autocompress.hw.runtimes.torch_eager", "autocompress.hw.runtimes.onnx",
                   "autocompress.hw.accelerator")
"""Modules whose import registers the built-in runtimes."""
WARMUP_E2E = 10
"""Calls of a whole network before it is timed."""


class Runtime(ABC):
    """What a profile's ``device.runtime`` names."""

    name: ClassVar[str]
    modelled: ClassVar[bool] = False
    """Latencies come from a formula (``device.kind`` modelled), not a measurement."""
    default_device: ClassVar[str]
    """The device name ``autocompress profile`` gives a profile of this runtime."""

    @property
    @abstractmethod
    def bits_rule(self) -> BitsRule:
        """The runtime's precision rule, with its fusion rules: how a candidate's layers map
        to the kernels it runs (and so the keys of its table)."""

    def settings(self) -> dict[str, str]:
        """Versions and settings a profile records next to the runtime."""
        return {}


class MeasuredRuntime(Runtime):
    """A runtime this machine can run and time."""

    @abstractmethod
    def prepare(self, model: nn.Module, shapes: Sequence[tuple[int, ...]], threads: int,
                int8: set[str] | None = None, isolated: bool = False) -> Callable[[], object]:
        """A callable running one batch through ``model``, whose inputs have ``shapes``.

        ``int8`` lists the layer paths to run as int8 (``None``: every one the precision
        rule quantizes, an empty set none); an ``isolated`` op (a table entry) is prepared
        with the inputs and outputs it has inside a whole network.
        """

    def prepare_kernel(self, model: nn.Module, shapes: Sequence[tuple[int, ...]], threads: int,
                       int8: set[str] | None = None, quantized_io: tuple[bool, bool] = (False, False)
                       ) -> tuple[Callable[[], object], tuple[bool, bool]]:
        """A table entry's kernel prepared as ``prepare`` prepares an ``isolated`` op, and
        whether, run alone, it converts its input into and its output out of a blocked layout
        that a chain of such kernels keeps (``Entry.reorders_input`` / ``reorders_output``).
        ``quantized_io`` (``OpSignature.quantized_io``) is set only by a rule with
        ``se_quantized_io``, that is, for a runtime that runs int8 tensors; by default a
        runtime has one layout and one tensor type."""
        return self.prepare(model, shapes, threads, int8, isolated=True), (False, False)


_RUNTIMES: dict[str, Runtime] = {}


def register_runtime(cls: type[Runtime]) -> type[Runtime]:
    """Class decorator: make ``cls`` available as ``--runtime <cls.name>``."""
    _RUNTIMES[cls.name] = cls()
    return cls


def runtime_names() -> list[str]:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return sorted(_RUNTIMES)


def runtime_named(name: str, option: str = "--runtime") -> Runtime:
    """The registered runtime called ``name``; anything else is one line naming ``option``."""
    names = runtime_names()
    if name not in names:
        raise UserInputError(f"{option}: unknown runtime {name!r} (allowed: {', '.join(names)})")
    return _RUNTIMES[name]


def measured_runtime_names() -> list[str]:
    return [name for name in runtime_names() if isinstance(_RUNTIMES[name], MeasuredRuntime)]


def measured_runtime(name: str, option: str = "--runtime") -> MeasuredRuntime:
    """The registered runtime ``name``, which must be one this machine can time."""
    runtime = runtime_named(name, option)
    if not isinstance(runtime, MeasuredRuntime):
        raise UserInputError(f"{option}: runtime {name!r} is modelled, not measured "
                             f"(measured ones: {', '.join(measured_runtime_names())})")
    return runtime
