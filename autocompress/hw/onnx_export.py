"""Export a compressed model to ONNX, and quantize an ONNX model to int8 (QDQ).

The export uses torch's TorchScript-based exporter (``dynamo=False``): on this code base it
exports a candidate in about 0.5-1 s where the torch.export-based exporter takes 6-10 s,
and profiling exports hundreds of small models. Both give numerically identical graphs
here; batch norm is folded into the preceding conv in eval mode.
"""

from __future__ import annotations

import functools
import platform
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import onnx
import torch
from onnxruntime.quantization import (
    CalibrationDataReader,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)
from torch import nn

from autocompress.compress.freeze import freeze

OPSET = 17
INPUT_NAME = "input"
QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
QUANTIZED_ACTIVATIONS = ("Relu",)
"""Quantized after a quantized op only: the ReLU after an int8 conv becomes its output range."""


def export_onnx(model: nn.Module, input_shape: tuple[int, ...], path: Path,
                extra_shapes: Sequence[tuple[int, ...]] = ()) -> Path:
    """Write ``freeze(model)`` to ``path`` as ONNX with fixed input shapes; returns ``path``.

    ``extra_shapes`` are those of further inputs (``extra0``, ...), such as the tensor a
    fused kernel adds to its conv's output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frozen = freeze(model)
    examples = tuple(torch.zeros(shape) for shape in (input_shape, *extra_shapes))
    names = [INPUT_NAME, *(f"extra{index}" for index in range(len(extra_shapes)))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(frozen, examples, str(path), dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=["output"],
                          do_constant_folding=True)
    return path


class _ArrayReader(CalibrationDataReader):
    """ONNX Runtime calibration reader over a list of batches."""

    def __init__(self, input_name: str, batches: Iterable[np.ndarray]) -> None:
        self._feeds = iter([{input_name: b.astype(np.float32)} for b in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


@functools.cache
def int8_weights_need_reduce_range() -> bool:
    """Whether int8 weights must keep to 7 bits on this CPU (ONNX Runtime's ``reduce_range``).

    On x86 CPUs without VNNI, ONNX Runtime's int8 kernels multiply u8 x s8 pairs into
    saturating 16-bit sums (VPMADDUBSW) that full-range 8-bit weights can overflow, which
    costs a network much of its accuracy (``docs/decisions.md``).
    """
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return False
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.is_file() else set()
    return not flags & {"avx512_vnni", "avx_vnni"}


def unshare_initializers(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with a copy of an initializer for each further node that reads it.

    The exporter stores equal constants once: the folded biases of batch norms with the same
    statistics (an untrained network's, all zero) are one tensor read by many convs. When
    the quantizer quantizes one of those convs it dequantizes the shared bias for all of
    them, and a float conv whose bias is no longer an initializer loses ONNX Runtime's
    blocked-layout (NCHWc) kernel: half the float convs of the int8 validation networks
    ran unblocked (a depthwise one up to 36 times slower) for that reason alone.
    """
    graph = model.graph
    tensors = {tensor.name: tensor for tensor in graph.initializer}
    seen: set[str] = set()
    for index, node in enumerate(graph.node):
        for slot, name in enumerate(node.input):
            if name not in tensors:
                continue
            if name in seen:
                copy = onnx.TensorProto()
                copy.CopyFrom(tensors[name])
                copy.name = node.input[slot] = f"{name}/{index}.{slot}"
                graph.initializer.append(copy)
            seen.add(name)
    return model


def quantize_onnx_int8(
    float_path: Path,
    int8_path: Path,
    calibration: np.ndarray,
    nodes_to_exclude: list[str] | None = None,
    reduce_range: bool | None = None,
) -> Path:
    """Static int8 quantization of ``float_path`` into ``int8_path`` with ONNX Runtime.

    QDQ format, per-channel symmetric int8 weights, uint8 activations calibrated (min/max)
    on ``calibration``, whose first axis is split into batches of the model's batch size.
    Only convs and linears (``QUANTIZED_OPS``) are quantized: they are the layers a policy
    gives bits to. ``nodes_to_exclude`` (ONNX node names) stay float. ``reduce_range``
    (7-bit weights) defaults to what this CPU needs (``int8_weights_need_reduce_range``).
    The model is first run through ONNX Runtime's pre-processing (graph optimisation, shape
    inference), which the quantizer needs to see biases as initializers, and each node gets
    its own initializers (``unshare_initializers``).

    Activations are uint8 because ONNX Runtime's x86 ``QLinearConv`` fusion takes uint8 inputs
    only: with int8 ones, the convs reading or writing a residual fork stayed float ``Conv``
    between DequantizeLinear and QuantizeLinear (about 6 of 35 per network). The ReLU after
    a quantized conv is quantized too (``QUANTIZED_ACTIVATIONS``): the quantizer folds it into
    the conv's output range instead of leaving a DequantizeLinear -> QuantizeLinear pair
    around it, so int8 chains run ``QLinearConv`` -> ``QLinearConv``.
    """
    if reduce_range is None:
        reduce_range = int8_weights_need_reduce_range()
    int8_path = Path(int8_path)
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    prepared = int8_path.with_name(int8_path.stem + ".prepared.onnx")
    quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
    model = unshare_initializers(onnx.load(str(prepared)))
    onnx.save(model, str(prepared))
    graph_input = model.graph.input[0]
    batch = graph_input.type.tensor_type.shape.dim[0].dim_value or len(calibration)
    batches = [calibration[i : i + batch] for i in range(0, len(calibration) - batch + 1, batch)]
    if not batches:
        raise ValueError(f"calibration needs at least {batch} rows (one batch), got {len(calibration)}")
    reader = _ArrayReader(graph_input.name, batches)
    quantize_static(str(prepared), str(int8_path), reader, quant_format=QuantFormat.QDQ,
                    per_channel=True, reduce_range=reduce_range,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=[*QUANTIZED_OPS, *QUANTIZED_ACTIVATIONS],
                    nodes_to_exclude=nodes_to_exclude or [])
    prepared.unlink()
    return int8_path

