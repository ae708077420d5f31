"""``onnxruntime`` and ``onnxruntime-int8``: a model's ONNX export run by ONNX Runtime.

``onnxruntime`` runs the float export; ``onnxruntime-int8`` the ONNX Runtime static QDQ int8
quantization of it (uint8 activations, int8 weights), where only the convs/linears whose
kernel precision is int8 (``BitsRule``) are quantized. A float op of the int8 runtime is
timed as the plain float export of that op: inside an int8 network ONNX Runtime runs float
convs and linears as float kernels (the blocked-layout conv, where the channels allow),
whereas between a DequantizeLinear and a QuantizeLinear of their own it quantizes their
weights (``QLinearConv``, ``QGemm``) or runs them unblocked with the weights dequantized on
every call, which timed float depthwise convs at up to 54 times their float-runtime entry.
In a network a float conv sits between a DequantizeLinear and a QuantizeLinear where it
reads one int8 conv's output and feeds another's input: there it runs ``QLinearConv`` and
is keyed and predicted as that int8 kernel (``BitsRule.requantizes_between_int8``).
An int8 op is timed on the uint8 tensors it takes and gives in an int8 chain, without a
quantize/dequantize boundary of its own (``int8_io``). What a switch between float and
int8 costs is the correction's per-transition term (``predict.precision_transitions``).

Their fusion rules come from the graphs ONNX Runtime writes after its optimisations
(``SessionOptions.optimized_model_filepath``, level ``ORT_ENABLE_ALL`` as the profiler and the
exporter run) for this project's networks. Float: batch norm is folded into the conv and a
ReLU after it becomes the conv's activation (both already inside a conv signature); the
conv is rewritten to the blocked-layout (NCHWc) kernel, which also takes the residual add
that follows a conv with no activation as its ``Sum`` input (and the ReLU after it), so
the project conv of a residual block and its add run as one kernel. Int8: the quantized
conv becomes ``QLinearConv`` (NHWC, with the ReLU dropped into its output range), as do the
convs of a squeeze-excite gate at int8 (so its key has bits, ``BitsRule.quantized_se``); a
gate after an int8 conv dequantizes that conv's uint8 output and one before an int8 conv
quantizes its product, so its key and its entry have those sides (``se_quantized_io``,
``int8_io.quantized_boundary``); a residual add runs on its own, fusing with nothing:
``QLinearAdd`` where both its inputs are int8, a float ``Add`` otherwise.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnx
import onnxruntime as ort
from torch import nn

from autocompress.candidate import FLOAT_BITS
from autocompress.compress.quantize import activation_bits_of, weight_bits_of
from autocompress.hw import bundle_runner as runner
from autocompress.hw.int8_io import quantized_boundary, uint8_io
from autocompress.hw.onnx_export import (
    OPSET,
    QUANTIZED_OPS,
    export_onnx,
    int8_weights_need_reduce_range,
    quantize_onnx_int8,
)
from autocompress.hw.ops import BN, BitsRule
from autocompress.hw.runtimes.fusion import FusionRule
from autocompress.hw.runtimes.registry import MeasuredRuntime, register_runtime

NCHWC_SUM = "com.microsoft.nchwc:Conv (Sum input)"
REORDER_INPUT, REORDER_OUTPUT = "ReorderInput", "ReorderOutput"
"""The nodes that convert a tensor into and out of the blocked (NCHWc) layout."""
INT8_EXPORT = ("QDQ, uint8 activations, ReLU in the conv's range; ops timed without Q/DQ nodes "
               "(float ones on float tensors, int8 ones on uint8 NHWC tensors)")
FLOAT_FUSION = (FusionRule(NCHWC_SUM, ("conv", "add"), BN),
                FusionRule(f"{NCHWC_SUM}, activation Relu", ("conv", "add", "relu"), BN))


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


def float_nodes(onnx_path: Path, quantized: set[str]) -> list[str]:
    """Names of the quantizable nodes of an export whose layers are not in ``quantized``."""
    nodes = [n for n in onnx.load(str(onnx_path)).graph.node if n.op_type in QUANTIZED_OPS]
    return [n.name for n in nodes if module_path(n.name) not in quantized]


def blocked_io(graph: onnx.GraphProto) -> tuple[bool, bool]:
    """Whether an optimised graph converts its first input into the blocked layout and its
    first output out of it."""
    first_input, output = graph.input[0].name, graph.output[0].name
    return (any(n.op_type == REORDER_INPUT and first_input in n.input for n in graph.node),
            any(n.op_type == REORDER_OUTPUT and output in n.output for n in graph.node))


class OnnxRuntime(MeasuredRuntime):
    """A runtime that runs a model's ONNX file in an ONNX Runtime session."""

    quantized: ClassVar[bool]
    """Runs the int8 QDQ file of a model (else the float one)."""

    def settings(self) -> dict[str, str]:
        return {"onnxruntime": ort.__version__, "onnx_opset": str(OPSET)}

    def write_onnx(self, model: nn.Module, shapes: Sequence[tuple[int, ...]], folder: Path,
                   int8: set[str] | None = None, isolated: bool = False,
                   quantized_io: tuple[bool, bool] = (False, False)) -> Path:
        """``model`` as the ONNX file this runtime runs, in ``folder`` (see ``prepare`` and
        ``prepare_kernel``)."""
        return export_onnx(model, shapes[0], folder / "float.onnx", shapes[1:])

    def prepare(self, model: nn.Module, shapes: Sequence[tuple[int, ...]], threads: int,
                int8: set[str] | None = None, isolated: bool = False) -> Callable[[], object]:
        with tempfile.TemporaryDirectory() as tmp:
            session = runner.open_session(self.write_onnx(model, shapes, Path(tmp), int8, isolated), threads)
        return runner.session_runner(session)

    def prepare_kernel(self, model: nn.Module, shapes: Sequence[tuple[int, ...]], threads: int,
                       int8: set[str] | None = None, quantized_io: tuple[bool, bool] = (False, False)
                       ) -> tuple[Callable[[], object], tuple[bool, bool]]:
        with tempfile.TemporaryDirectory() as tmp:
            optimized = Path(tmp) / "optimized.onnx"
            path = self.write_onnx(model, shapes, Path(tmp), int8, isolated=True, quantized_io=quantized_io)
            session = runner.open_session(path, threads, optimized)
            layout = blocked_io(onnx.load(str(optimized)).graph)
        return runner.session_runner(session), layout


@register_runtime
class OnnxRuntimeFloat(OnnxRuntime):
    name = "onnxruntime"
    default_device = "cpu-onnxruntime"
    quantized = False

    @property
    def bits_rule(self) -> BitsRule:
        return BitsRule(fusion=FLOAT_FUSION)


@register_runtime
class OnnxRuntimeInt8(OnnxRuntime):
    name = "onnxruntime-int8"
    default_device = "cpu-onnxruntime-int8"
    quantized = True

    @property
    def bits_rule(self) -> BitsRule:
        return BitsRule(weight=(8, FLOAT_BITS), activation=(8, FLOAT_BITS), follow=True, quantized_se=True,
                        requantizes_between_int8=True, se_quantized_io=True)

    def settings(self) -> dict[str, str]:
        return super().settings() | {"int8_weights": "7-bit (reduce_range: this CPU has no VNNI)"
                                     if int8_weights_need_reduce_range() else "8-bit",
                                     "int8_export": INT8_EXPORT}

    def write_onnx(self, model: nn.Module, shapes: Sequence[tuple[int, ...]], folder: Path,
                   int8: set[str] | None = None, isolated: bool = False,
                   quantized_io: tuple[bool, bool] = (False, False)) -> Path:
        """The int8 QDQ file of ``model``: ``int8`` lists the layer paths to quantize (``None``
        every conv/linear, an empty set none: then it is the float file); an ``isolated``
        quantized op takes and gives uint8 tensors, as in an int8 chain (``int8_io``), and
        so does an ``isolated`` op on the sides ``quantized_io`` names (a squeeze-excite
        gate beside int8 convs, ``BitsRule.se_quantized_io``)."""
        path = super().write_onnx(model, shapes, folder)
        if int8 != set():
            exclude = float_nodes(path, int8) if int8 is not None else []
            shape = shapes[0]
            calibration = np.random.default_rng(1).standard_normal((shape[0] * 2, *shape[1:]))
            path = quantize_onnx_int8(path, folder / "int8.onnx", calibration.astype(np.float32),
                                      nodes_to_exclude=exclude)
        if not isolated or (int8 == set() and not any(quantized_io)):
            return path
        return uint8_io(quantized_boundary(path, folder / "boundary.onnx", quantized_io), folder / "entry.onnx")
