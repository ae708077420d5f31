"""Op signatures: the kernels a runtime executes for a compressed network, and the rule
mapping a layer's bits to the precision a device runs (a leaf: families and runtimes import it).

A signature is keyed by what actually runs: a conv with its batch norm and activation
(one fused kernel in ONNX Runtime, one ``ConvBNAct`` unit in eager torch), a
squeeze-excite gate, a residual add, the global pool, a linear layer; and, where the
runtime's fusion rules (``BitsRule.fusion``) join consecutive ops into one kernel, the
head op with the ops fused into it (``conv/...>add/...``: one entry, one timed unit). Shapes are those of
the compressed model (channels after pruning, both factors of a low-rank layer), for one
image; the profile's batch size multiplies them at measurement time. Bit-widths are in the
key only where the device has more than one kernel precision, mapped by ``BitsRule`` to the
precision the device really runs (a 4-bit layer runs as int8 on a CPU).

Unstructured sparsity never changes a signature: no profile here has sparse kernels.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from torch import nn

from autocompress.candidate import FLOAT_BITS
from autocompress.compress.lowrank import LowRankConv2d, LowRankLinear, rank_for
from autocompress.compress.quantize import activation_bits_of, weight_bits_of
from autocompress.hw.fixed_ops import FixedCall
from autocompress.hw.runtimes.fusion import FusionRule

if TYPE_CHECKING:
    from autocompress.space import SearchSpace

BN_RELU, BN, NONE, BIAS = "bn+relu", "bn", "none", "bias"
QUANTIZED_IO = ("qin", "qout")
"""Key parts of an op that dequantizes its input / quantizes its output (``OpSignature.quantized_io``)."""
FIXED = "fixed"
"""Op type of every op that carries no knob beyond the built-in relu, add, pool and se
(``hw.fixed_ops``)."""
FUSED = ">"
"""Joins the keys of the ops of one fused kernel, head first: ``conv/.../bn>add/8x16x16``."""


@dataclass(frozen=True, order=True)
class OpSignature:
    """One kernel: op type, input shape (C,H,W) or (features,), and its parameters.

    ``out`` is the output channels (conv, linear) or the squeeze width (se); ``epilogue``
    what is fused after the kernel; ``bits`` the (weight, activation) kernel precision,
    ``None`` on devices with one precision; ``quantized_io`` whether the op reads (first) and
    writes (second) the uint8 tensor of an int8 neighbour, dequantizing or quantizing it
    itself (``BitsRule.se_quantized_io``); ``fused`` the ops the runtime runs inside this
    one's kernel (each consuming a tensor of its output shape).
    """

    op: str
    shape: tuple[int, ...]
    out: int = 0
    kernel: int = 0
    stride: int = 1
    groups: int = 1
    epilogue: str = NONE
    bits: tuple[int, int] | None = None
    quantized_io: tuple[bool, bool] = (False, False)
    fused: tuple[OpSignature, ...] = field(default=())
    padding: int = -1
    """A conv's padding on every side; -1: ``kernel // 2``, as every family's own convs."""
    dilation: int = 1
    call: FixedCall | None = None
    """What a fixed op calls (``hw.fixed_ops``); its inputs are ``shape`` and ``inputs``."""
    inputs: tuple[tuple[int, ...], ...] = ()
    """A fixed op's tensor inputs after the first, in order."""

    @functools.cached_property
    def key(self) -> str:
        return FUSED.join([self._own_key, *(op.key for op in self.fused)])

    @property
    def _own_key(self) -> str:
        shapes = "+".join("x".join(map(str, shape)) for shape in (self.shape, *self.inputs))
        if self.op == FIXED:
            count = [f"n{self.out}"] if self.call.concat else []
            return "/".join([FIXED, shapes, *count, self.call.callee, self.call.order, self.call.arguments])
        parts = [self.op, shapes]
        if self.op in ("conv", "linear", "se"):
            parts.append(f"o{self.out}")
        if self.op == "conv":
            parts += [f"k{self.kernel}", f"s{self.stride}", f"g{self.groups}"]
            if self.padding != -1:
                parts.append(f"p{self.padding}")
            if self.dilation != 1:
                parts.append(f"d{self.dilation}")
        if self.op in ("conv", "linear"):
            parts.append(self.epilogue)
        if self.bits is not None:
            parts.append(f"w{self.bits[0]}a{self.bits[1]}")
        parts += [part for part, quantized in zip(QUANTIZED_IO, self.quantized_io, strict=True) if quantized]
        return "/".join(parts)

    @classmethod
    def from_key(cls, key: str) -> OpSignature:
        head, *fused = key.split(FUSED)
        return dataclasses.replace(cls._from_own_key(head), fused=tuple(map(cls._from_own_key, fused)))

    @classmethod
    def _from_own_key(cls, key: str) -> OpSignature:
        if key.startswith(FIXED + "/"):
            _, shapes, rest = key.split("/", 2)
            first, *others = [tuple(int(v) for v in shape.split("x")) for shape in shapes.split("+")]
            out = 0
            count, tail = rest.split("/", 1)
            if count[:1] == "n" and count[1:].isdigit():
                out, rest = int(count[1:]), tail
            callee, order, arguments = rest.split("/", 2)
            return cls(FIXED, first, out, call=FixedCall(callee, arguments, order), inputs=tuple(others))
        op, shape, *rest = key.split("/")
        fields: dict = {"op": op, "shape": tuple(int(v) for v in shape.split("x")),
                        "quantized_io": tuple(side in rest for side in QUANTIZED_IO)}
        for part in rest:
            if part[0] == "w" and "a" in part:
                weight, activation = part[1:].split("a")
                fields["bits"] = (int(weight), int(activation))
            elif part in (BN_RELU, BN, NONE, BIAS):
                fields["epilogue"] = part
            elif part not in QUANTIZED_IO:
                name = {"o": "out", "k": "kernel", "s": "stride", "g": "groups", "p": "padding",
                        "d": "dilation"}[part[0]]
                fields[name] = int(part[1:])
        return cls(**fields)

    @property
    def quantized(self) -> bool:
        return self.bits is not None and min(self.bits) < FLOAT_BITS

    def _spatial_out(self, size: int) -> int:
        padding = self.kernel // 2 if self.padding == -1 else self.padding
        return (size + 2 * padding - self.dilation * (self.kernel - 1) - 1) // self.stride + 1

    @property
    def out_shape(self) -> tuple[int, ...]:
        """Shape of the op's output for one image (a fixed op's: its first input's)."""
        if self.op == "conv":
            _, h, w = self.shape
            return self.out, self._spatial_out(h), self._spatial_out(w)
        if self.op == "linear":
            return (*self.shape[:-1], self.out)
        if self.op == "pool":
            return (self.shape[0],)
        return self.shape

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of the kernel's inputs for one image: the head op's (a fixed op's every
        input), then one per fused add (the tensor added to the head's output)."""
        return [self.shape, *self.inputs, *(op.shape for op in self.fused if op.op == "add")]

    def macs(self) -> int:
        """Multiply-accumulates per image (the FLOPs baseline and the modelled device)."""
        return self._own_macs() + sum(op.macs() for op in self.fused)

    def _own_macs(self) -> int:
        """Multiply-accumulates of a conv, linear or squeeze-excite; one per input element of
        any other op."""
        if self.op == "conv":
            _, out_h, out_w = self.out_shape
            return out_h * out_w * self.out * (self.shape[0] // self.groups) * self.kernel**2
        if self.op == "linear":
            return math.prod(self.shape) * self.out
        if self.op == "se":
            c, h, w = self.shape
            return c * h * w * 2 + 2 * c * self.out
        return sum(math.prod(shape) for shape in (self.shape, *self.inputs))

    def weight_count(self) -> int:
        return self._own_weights() + sum(op.weight_count() for op in self.fused)

    def _own_weights(self) -> int:
        if self.op == "conv":
            return self.out * (self.shape[0] // self.groups) * self.kernel**2
        if self.op == "linear":
            return self.shape[-1] * self.out
        if self.op == "se":
            return 2 * self.shape[0] * self.out
        return 0


@dataclass(frozen=True)
class BitsRule:
    """How a layer's (weight, activation) bits map to the precision the device runs.

    Each side rounds up to the smallest native bit-width that holds it (the widest if none
    does); with ``follow`` the activations take the weights' kernel precision, as on a CPU
    whose int8 kernels need int8 on both sides and whose float kernels take float inputs.
    ``fusion`` holds the runtime's fusion rules: with the bit-widths, they make a
    candidate's ops into the kernels the runtime runs, which key its table. With
    ``quantized_se`` a squeeze-excite gate's convs run at their layers' precision, so its
    key has bits (``gate_bits``); else the gate is one precision-free op. With
    ``requantizes_between_int8`` a float conv that reads one int8 conv's output and feeds
    another int8 conv runs as an int8 kernel (``runtime_precision``). With
    ``se_quantized_io`` a squeeze-excite gate after (before) an int8 kernel reads (writes)
    its uint8 tensor, dequantizing (quantizing) the whole tensor itself, which an entry
    timed on float tensors leaves out: its key says which side (``quantized_io``).
    """

    weight: tuple[int, ...] = (FLOAT_BITS,)
    activation: tuple[int, ...] = (FLOAT_BITS,)
    follow: bool = False
    fusion: tuple[FusionRule, ...] = ()
    quantized_se: bool = False
    requantizes_between_int8: bool = False
    se_quantized_io: bool = False

    @classmethod
    def of(cls, profile) -> BitsRule:
        """The rule of a profile: its native bit-widths, its runtime's fusion rules and
        squeeze-excite keying."""
        from autocompress.hw.runtimes import runtime_named

        runtime = runtime_named(profile.device.runtime, "device.runtime").bits_rule
        return cls(tuple(sorted(profile.native_weight_bits)),
                   tuple(sorted(profile.native_activation_bits)),
                   profile.activation_bits_follow_weights, runtime.fusion, runtime.quantized_se,
                   runtime.requantizes_between_int8, runtime.se_quantized_io)

    @classmethod
    def of_runtime(cls, runtime: str) -> BitsRule:
        """The rule of the registered runtime ``runtime``."""
        from autocompress.hw.runtimes import runtime_named

        return runtime_named(runtime).bits_rule

    @property
    def keyed(self) -> bool:
        return len(self.weight) > 1 or len(self.activation) > 1

    @staticmethod
    def _round_up(bits: int, native: tuple[int, ...]) -> int:
        return next((n for n in native if n >= bits), native[-1])

    def kernel_bits(self, weight_bits: int, activation_bits: int) -> tuple[int, int] | None:
        if not self.keyed:
            return None
        weight = self._round_up(weight_bits, self.weight)
        activation = weight if self.follow else self._round_up(activation_bits, self.activation)
        return weight, activation

    def gate_bits(self, weight_bits: int, activation_bits: int) -> tuple[int, int] | None:
        """Key precision of a squeeze-excite gate whose reduce conv has these bits.

        The gate's expand conv has a policy of its own, which the search gives the same
        bits (one setting per stage) but a per-layer random policy may not: such a gate is
        keyed, and timed, as if both convs had the reduce conv's precision.
        """
        return self.kernel_bits(weight_bits, activation_bits) if self.quantized_se else None

    def classes(self, space: SearchSpace) -> list[tuple[int, int] | None]:
        """The distinct kernel precisions a layer of ``space`` can run at."""
        layer = space.choices.layer
        pairs = itertools.product(set(layer.weight_bits) | {FLOAT_BITS},
                                  set(layer.activation_bits) | {FLOAT_BITS})
        return sorted({self.kernel_bits(w, a) for w, a in pairs}, key=lambda b: b or (0, 0))


FLOAT = BitsRule()


# --- signatures of a model's layers ---------------------------------------------------------

def conv_signatures(conv: nn.Module, shape: tuple[int, ...], epilogue: str,
                     rule: BitsRule) -> list[OpSignature]:
    parts = list(conv) if isinstance(conv, LowRankConv2d) else [conv]
    result = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        bits = rule.kernel_bits(weight_bits_of(part), activation_bits_of(part))
        result.append(OpSignature("conv", shape, part.out_channels, part.kernel_size[0],
                                  part.stride[0], part.groups, epilogue if last else NONE, bits))
        stride = part.stride[0]
        shape = (part.out_channels, -(-shape[1] // stride), -(-shape[2] // stride))
    return result


def linear_signatures(linear: nn.Module, features: int, rule: BitsRule) -> list[OpSignature]:
    parts = list(linear) if isinstance(linear, LowRankLinear) else [linear]
    result = []
    for part in parts:
        bits = rule.kernel_bits(weight_bits_of(part), activation_bits_of(part))
        epilogue = BIAS if part.bias is not None else NONE
        result.append(OpSignature("linear", (features,), part.out_features, epilogue=epilogue,
                                  bits=bits))
        features = part.out_features
    return result

@functools.lru_cache(maxsize=4096)
def rank_of(out_channels: int, in_features: int, ratio: float) -> int:
    return rank_for(nn.Linear(in_features, out_channels, device="meta"), ratio)


def network_macs(signatures: Iterable[OpSignature]) -> int:
    return sum(s.macs() for s in signatures)
