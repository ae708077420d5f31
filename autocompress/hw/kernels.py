"""The torch modules that run one kernel each: what a family's network is built of, what
the profiler times and what a profiling bundle exports.

``ConvBNAct`` (a conv, its batch norm and an optional ReLU: one fused kernel in ONNX
Runtime, one unit in eager torch) and ``SqueezeExcite`` (the gate of op type ``se``) are
the units the built-in families build their networks of and the op enumeration recognises.
``op_module`` builds, for any op signature, a module running exactly its kernel: each op
type has its builder (``OP_MODULES``), so timing a space's ops needs no family's classes.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from autocompress.hw.fixed_ops import FixedOpModule, stored_shape
from autocompress.hw.ops import BIAS, BN_RELU, FIXED, NONE, OpSignature


class ConvBNAct(nn.Sequential):
    """Conv2d -> BatchNorm2d -> optional ReLU: the unit a runtime fuses into one kernel."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        groups: int = 1,
        act: bool = True,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False
        )
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=False) if act else nn.Identity()


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation gate on the expanded channels (MobileNetV3).

    It is channel-wise on its input, so channel pruning of the layer that feeds it can
    slice it through ``prune_channels``.
    """

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.reduce = nn.Conv2d(channels, squeeze, 1)
        self.act = nn.ReLU()
        self.expand = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gate(self.expand(self.act(self.reduce(self.pool(x)))))
        return x * scale

    @torch.no_grad()
    def prune_channels(self, keep: torch.Tensor) -> None:
        """Keep only the input/output channels indexed by ``keep``."""
        reduce = nn.Conv2d(len(keep), self.reduce.out_channels, 1)
        reduce.weight.copy_(self.reduce.weight[:, keep])
        reduce.bias.copy_(self.reduce.bias)
        expand = nn.Conv2d(self.expand.in_channels, len(keep), 1)
        expand.weight.copy_(self.expand.weight[keep])
        expand.bias.copy_(self.expand.bias[keep])
        self.reduce, self.expand = reduce, expand


class _Add(nn.Module):
    """A residual add of two same-shaped tensors (here the input with itself)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x


class _Pool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


class _Fused(nn.Module):
    """A fused kernel: the head op, then each fused op on its output (an add adds the next
    extra input, a ReLU rectifies), so the exported graph is the pattern the runtime fuses.

    An added tensor first passes a 1x1 depthwise conv (one pass over it): ONNX Runtime
    folds an add into its blocked-layout (NCHWc) conv only when both operands are in that
    layout, as a residual produced by the previous block is; a graph input is plain NCHW,
    and the conv puts it in the layout, as the reorder of the head's input does for that.
    """

    def __init__(self, head: nn.Module, fused: tuple[str, ...], added: list[int]) -> None:
        super().__init__()
        self.head, self.fused = head, fused
        self.layout = nn.ModuleList(nn.Conv2d(c, c, 1, groups=c, bias=False) for c in added)

    def forward(self, x: torch.Tensor, *added: torch.Tensor) -> torch.Tensor:
        out, pending = self.head(x), iter(zip(self.layout, added, strict=True))
        for op in self.fused:
            if op == "add":
                layout, tensor = next(pending)
                out = out + layout(tensor)
            else:
                out = torch.relu(out)
        return out


def op_module(signature: OpSignature) -> nn.Module:
    """A module that runs exactly the kernel of ``signature`` (random weights); its inputs
    have the signature's ``input_shapes``."""
    if signature.fused:
        return _Fused(_single_op_module(signature), tuple(op.op for op in signature.fused),
                      [shape[0] for shape in signature.input_shapes[1:]])
    return _single_op_module(signature)


def _conv_module(s: OpSignature) -> nn.Module:
    """The conv of ``s`` with what its epilogue fuses: a batch norm and ReLU, or a bias."""
    padding = s.kernel // 2 if s.padding == -1 else s.padding
    conv = nn.Conv2d(s.shape[0], s.out, s.kernel, s.stride, padding, s.dilation, groups=s.groups,
                     bias=s.epilogue == BIAS)
    if s.epilogue in (NONE, BIAS):
        return conv
    unit = ConvBNAct(s.shape[0], s.out, s.kernel, s.stride, s.groups, act=s.epilogue == BN_RELU)
    unit.conv = conv
    return unit


OP_MODULES: dict[str, Callable[[OpSignature], nn.Module]] = {
    "conv": _conv_module,
    "linear": lambda s: nn.Linear(s.shape[-1], s.out, bias=s.epilogue == BIAS),
    FIXED: lambda s: FixedOpModule(s.call, 1 + len(s.inputs), s.out if s.call.concat else 0),
    "se": lambda s: SqueezeExcite(s.shape[0], s.out),
    "add": lambda s: _Add(),
    "pool": lambda s: _Pool(),
    "relu": lambda s: nn.ReLU(),
}
"""The module that runs one op type's kernel (random weights), by op type (``OpSignature.op``)."""


def _single_op_module(s: OpSignature) -> nn.Module:
    if s.op not in OP_MODULES:
        raise ValueError(f"unknown op type in signature {s.key}")
    return OP_MODULES[s.op](s)


def op_shapes(signature: OpSignature, batch_size: int) -> list[tuple[int, ...]]:
    """Input shapes of a batch through the kernel of ``signature`` (a fixed op's input stored
    transposed is fed as the contiguous tensor its module permutes: ``stored_shape``)."""
    shapes = [(batch_size, *shape) for shape in signature.input_shapes]
    if signature.op != FIXED:
        return shapes
    return [stored_shape(shape, order) for shape, order in zip(
        shapes, signature.call.input_orders(len(shapes)), strict=True)]


def op_int8(signature: OpSignature) -> set[str] | None:
    """The layers of ``op_module(signature)`` a runtime runs as int8 (``prepare``'s ``int8``):
    all of a quantized op's, none of a float one's. A float op is timed as the float kernel
    alone, with no quantize/dequantize nodes around it (``runtimes.onnx`` says why)."""
    return None if signature.quantized else set()
