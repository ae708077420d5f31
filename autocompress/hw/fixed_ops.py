"""Fixed ops: every op of a traced network that carries no compression knob.

Pooling, activations, element-wise arithmetic, concat, norms, copies of a transposed
tensor (a channel shuffle), ... A fixed op is keyed by what it calls (a ``torch.nn`` module
class with its constants, or a function or tensor method with its non-tensor arguments)
and by its input shapes, and is timed by calling exactly that at those shapes
(``FixedOpModule``). Its description is a ``FixedCall``: the callee's name, which resolves
back to the callee in any process (a function that cannot be found by its name cannot be
timed alone, and says so), and the arguments as JSON, where ``{"tensor": i}`` stands for
the op's i-th tensor input and ``{"param": shape}`` for a parameter of the model (random
values of that shape when timed).

A concat is keyed by its number of inputs and its output shape, and timed as a concat of
that many near-equal slices: its kernel copies each input once, and keying it by every
input's width would make a table of every combination of its inputs' pruning ratios.
"""

from __future__ import annotations

import builtins
import importlib
import inspect
import json
import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from autocompress.errors import UserInputError

MODULE, FUNCTION, METHOD = "nn.", "fn:", "Tensor."
CONCATS = frozenset({"torch.cat", "torch.concat", "torch.concatenate"})
CHANNEL_ATTRIBUTES: dict[type[nn.Module], str] = {
    nn.BatchNorm1d: "num_features", nn.BatchNorm2d: "num_features", nn.BatchNorm3d: "num_features",
    nn.InstanceNorm2d: "num_features", nn.GroupNorm: "num_channels", nn.PReLU: "num_parameters",
}
"""Constants of a channel-wise module that are its channel count (pruning changes them)."""


class UntimeableOpError(UserInputError):
    """A fixed op that cannot be described so as to be timed alone."""


def _encode(value: Any, what: str) -> Any:
    """``value`` as JSON (tuples as lists; dtypes, slices and Ellipsis tagged)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list, torch.Size)):
        return [_encode(v, what) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode(v, what) for k, v in value.items()}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, slice):
        return {"slice": [_encode(v, what) for v in (value.start, value.stop, value.step)]}
    if value is Ellipsis:
        return {"ellipsis": True}
    raise UntimeableOpError(f"{what}: an argument of type {type(value).__name__} cannot be keyed in a latency table")


def _decode(value: Any, tensors: Sequence[torch.Tensor], params: list[torch.Tensor]) -> Any:
    """``value`` with tensor inputs from ``tensors`` and parameters from ``params`` (in order)."""
    if isinstance(value, list):
        return [_decode(v, tensors, params) for v in value]
    if isinstance(value, dict):
        if "tensor" in value:
            return tensors[value["tensor"]]
        if "param" in value:
            return params.pop(0)
        if "dtype" in value:
            return getattr(torch, value["dtype"])
        if "slice" in value:
            return slice(*value["slice"])
        if "ellipsis" in value:
            return Ellipsis
        return {k: _decode(v, tensors, params) for k, v in value.items()}
    return value


def _param_shapes(value: Any) -> list[list[int]]:
    """The shapes of the parameter inputs (``{"param": shape}``) in ``value``, in order."""
    if isinstance(value, list):
        return [shape for v in value for shape in _param_shapes(v)]
    if isinstance(value, dict):
        if "param" in value:
            return [value["param"]]
        return [shape for v in value.values() for shape in _param_shapes(v)]
    return []


def _tuples(value: Any) -> Any:
    """JSON lists back to tuples (torch's size and kernel arguments take either)."""
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _function_name(function: Callable) -> str:
    for prefix, namespace in (("torch.", torch), ("F.", torch.nn.functional), ("operator.", operator),
                              ("builtins.", builtins)):
        if getattr(namespace, function.__name__, None) is function:
            return prefix + function.__name__
    return f"{FUNCTION}{function.__module__}:{function.__qualname__}"


def _resolve_function(name: str) -> Callable:
    prefix, _, rest = name.partition(".")
    namespaces = {"torch": torch, "F": torch.nn.functional, "operator": operator, "builtins": builtins}
    if prefix in namespaces and not name.startswith(FUNCTION):
        return getattr(namespaces[prefix], rest)
    module, _, qualname = name.removeprefix(FUNCTION).partition(":")
    found: Any = importlib.import_module(module)
    for part in qualname.split("."):
        found = getattr(found, part)
    return found


@dataclass(frozen=True, order=True)
class FixedCall:
    """What a fixed op calls: ``callee`` (``nn.MaxPool2d``, ``F.relu6``, ``torch.cat``,
    ``Tensor.contiguous``, ``fn:module:qualname``), its arguments as compact JSON, and
    ``order``: for each tensor input that is not contiguous (a transposed view), its dims
    from the largest stride to the smallest, comma-separated, inputs separated by ``;``
    (empty when every input is contiguous)."""

    callee: str
    arguments: str
    order: str = ""

    def with_order(self, inputs: Sequence[torch.Tensor]) -> FixedCall:
        """This call with the memory order of its tensor ``inputs`` (batch dim included)."""
        orders = [_dim_order(tensor) for tensor in inputs]
        if all(order == tuple(range(len(order))) for order in orders):
            return self
        return FixedCall(self.callee, self.arguments, ";".join(",".join(map(str, o)) for o in orders))

    def input_orders(self, count: int) -> list[tuple[int, ...] | None]:
        """Each tensor input's dim order, ``None`` where it is contiguous."""
        if not self.order:
            return [None] * count
        return [tuple(int(d) for d in part.split(",")) for part in self.order.split(";")]

    @classmethod
    def of_module(cls, module: nn.Module, what: str, channels: int | None = None) -> FixedCall:
        """A ``torch.nn`` module called on its input(s): its class and the constants its
        constructor takes (``__constants__``, which rebuild it); with
        ``channels``, its channel-count constant set to that (a pruned variant)."""
        kind = type(module)
        if not kind.__module__.startswith("torch.nn"):
            raise UntimeableOpError(f"{what}: module {kind.__name__} is not a torch.nn module, so it cannot be "
                                    "timed alone")
        accepted = inspect.signature(kind.__init__).parameters
        constants = {name: getattr(module, name) for name in getattr(kind, "__constants__", ())
                     if hasattr(module, name) and name in accepted}
        if channels is not None and kind in CHANNEL_ATTRIBUTES:
            constants[CHANNEL_ATTRIBUTES[kind]] = channels
        return cls(MODULE + kind.__name__, json.dumps(_encode(constants, what), separators=(",", ":")))

    @classmethod
    def of_function(cls, function: Callable, args: Sequence, kwargs: dict, what: str) -> FixedCall:
        name = _function_name(function)
        try:
            resolved = _resolve_function(name)
        except (ImportError, AttributeError):
            resolved = None
        if resolved is not function:
            raise UntimeableOpError(f"{what}: function {function.__qualname__} cannot be imported by its name, so it "
                                    "cannot be timed alone (define it in an importable module, or let torch.fx "
                                    "trace through it)")
        return cls(name, json.dumps(_encode([list(args), kwargs], what), separators=(",", ":")))

    @classmethod
    def of_method(cls, method: str, args: Sequence, kwargs: dict, what: str) -> FixedCall:
        return cls(METHOD + method, json.dumps(_encode([list(args), kwargs], what), separators=(",", ":")))

    @property
    def concat(self) -> bool:
        """A concat along channels (keyed by its output and input count)."""
        if self.callee not in CONCATS:
            return False
        args, kwargs = json.loads(self.arguments)
        return (args[1] if len(args) > 1 else kwargs.get("dim", 0)) == 1

    def with_param_width(self, full: int, width: int) -> FixedCall:
        """This call with each parameter input's dims of size ``full`` at ``width`` (a
        channel-wise parameter of a pruned tensor)."""
        if width == full or '"param"' not in self.arguments:
            return self

        def resize(value: Any) -> Any:
            if isinstance(value, dict) and "param" in value:
                return {"param": [width if size == full else size for size in value["param"]]}
            if isinstance(value, list):
                return [resize(v) for v in value]
            return {k: resize(v) for k, v in value.items()} if isinstance(value, dict) else value

        return FixedCall(self.callee, json.dumps(resize(json.loads(self.arguments)), separators=(",", ":")),
                         self.order)


class FixedOpModule(nn.Module):
    """Calls one ``FixedCall`` on its tensor inputs (a concat: on slices of its one input)."""

    def __init__(self, call: FixedCall, inputs: int, parts: int = 0) -> None:
        super().__init__()
        self.call, self.parts = call, parts
        self.orders = call.input_orders(inputs)
        arguments = json.loads(call.arguments)
        if call.callee.startswith(MODULE):
            self.target: nn.Module | None = getattr(nn, call.callee.removeprefix(MODULE))(**{
                name: _tuples(value) for name, value in arguments.items()})
            self.args, self.kwargs = [], {}
        else:
            self.target = None
            self.args, self.kwargs = arguments
        self.params = nn.ParameterList(nn.Parameter(torch.randn(shape), requires_grad=False)
                                       for shape in _param_shapes(arguments))

    def forward(self, *stored: torch.Tensor) -> torch.Tensor:
        inputs = tuple(tensor if order is None else tensor.permute(*_inverse(order))
                       for tensor, order in zip(stored, self.orders, strict=True))
        if self.target is not None:
            return self.target(*inputs)
        if self.parts:
            inputs = tuple(torch.tensor_split(inputs[0], self.parts, dim=1))
            return torch.cat(inputs, dim=1)
        params = list(self.params)
        args, kwargs = _decode(self.args, inputs, params), _decode(self.kwargs, inputs, params)
        if self.call.callee.startswith(METHOD):
            receiver, *rest = args
            return getattr(receiver, self.call.callee.removeprefix(METHOD))(*rest, **kwargs)
        return _resolve_function(self.call.callee)(*args, **kwargs)


def _inverse(order: Sequence[int]) -> list[int]:
    return sorted(range(len(order)), key=order.__getitem__)


def _dim_order(tensor: torch.Tensor) -> tuple[int, ...]:
    """``tensor``'s dims from the largest stride to the smallest (ties keep dim order)."""
    return tuple(sorted(range(tensor.dim()), key=lambda d: (-tensor.stride(d), d)))


def stored_shape(shape: tuple[int, ...], order: tuple[int, ...] | None) -> tuple[int, ...]:
    """The contiguous tensor a runtime feeds for an input of ``shape`` stored in ``order``
    (``FixedOpModule`` permutes it back, a view)."""
    return shape if order is None else tuple(shape[d] for d in order)


def concat_inputs(shapes: Sequence[tuple[int, ...]]) -> tuple[tuple[int, ...], int]:
    """The output shape of a concat along channels of ``shapes`` and how many they are."""
    first = shapes[0]
    return (sum(shape[0] for shape in shapes), *first[1:]), len(shapes)


def elements(shapes: Sequence[tuple[int, ...]]) -> int:
    return sum(math.prod(shape) for shape in shapes)
