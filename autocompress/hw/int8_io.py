"""An int8 op's QDQ file rewritten to take and give the uint8 tensors an int8 network passes on.

Inside an int8 network, ONNX Runtime runs a chain of quantized convs as ``QLinearConv`` after
``QLinearConv`` on uint8 channels-last (NHWC) tensors: the network's input is quantized and
transposed once, and its output transposed and dequantized once. A quantized op exported
alone pays all of that on its own (QuantizeLinear, Transpose, the kernel, Transpose,
DequantizeLinear), so a sum of such entries counted that traffic once per op, two to three
times what the network has. Rewritten here, the file's quantized inputs and outputs are the
uint8 NHWC tensors themselves, and ONNX Runtime's layout transformation cancels the
transposes: what is timed is the kernel alone, as it runs in the chain.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def _dims(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value for d in value.type.tensor_type.shape.dim]


def _channels_last(dims: list[int]) -> list[int]:
    return [dims[0], *dims[2:], dims[1]] if len(dims) == 4 else dims


def uint8_io(path: Path, out: Path) -> Path:
    """Write ``path`` (a QDQ file) to ``out`` with its quantized inputs and outputs as uint8.

    A graph input read only by a QuantizeLinear becomes that node's uint8 output, and a
    graph output written by a DequantizeLinear becomes that node's uint8 input; 4-d ones are
    channels-last, with a Transpose to and from the file's channels-first layout that ONNX
    Runtime folds into its NHWC kernels. Other inputs and outputs stay as they are (a
    squeeze-excite gate reads and writes float tensors in the network too).
    """
    model = onnx.load(str(path))
    graph = model.graph
    readers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    writers = {name: node for node in graph.node for name in node.output}
    dropped: list[onnx.NodeProto] = []
    head: list[onnx.NodeProto] = []
    tail: list[onnx.NodeProto] = []
    inputs, outputs = [], []
    for value in graph.input:
        nodes = readers.get(value.name, [])
        if len(nodes) != 1 or nodes[0].op_type != "QuantizeLinear":
            inputs.append(value)
            continue
        quantize, dims = nodes[0], _dims(value)
        dropped.append(quantize)
        head.append(helper.make_node("Transpose", [value.name], [quantize.output[0]], perm=TO_NCHW)
                     if len(dims) == 4 else helper.make_node("Identity", [value.name], [quantize.output[0]]))
        inputs.append(helper.make_tensor_value_info(value.name, TensorProto.UINT8, _channels_last(dims)))
    for value in graph.output:
        dequantize = writers.get(value.name)
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            outputs.append(value)
            continue
        dims = _dims(value)
        dropped.append(dequantize)
        tail.append(helper.make_node("Transpose", [dequantize.input[0]], [value.name], perm=TO_NHWC)
                     if len(dims) == 4 else helper.make_node("Identity", [dequantize.input[0]], [value.name]))
        outputs.append(helper.make_tensor_value_info(value.name, TensorProto.UINT8, _channels_last(dims)))
    kept = [node for node in graph.node if all(node is not gone for gone in dropped)]
    del graph.node[:]
    graph.node.extend([*head, *kept, *tail])
    del graph.input[:]
    graph.input.extend(inputs)
    del graph.output[:]
    graph.output.extend(outputs)
    onnx.save(model, str(out))
    return Path(out)


BOUNDARY_SCALE = 1 / 32
"""Scale of the quantize/dequantize pair ``quantized_boundary`` adds (the time of either
does not depend on it)."""


def quantized_boundary(path: Path, out: Path, sides: tuple[bool, bool]) -> Path:
    """Write ``path`` to ``out`` with a QuantizeLinear -> DequantizeLinear pair on its first
    input (``sides[0]``) and on its first output (``sides[1]``), so that ``uint8_io`` makes
    that side a uint8 tensor which the op itself dequantizes or quantizes: a squeeze-excite
    gate between int8 convs pays that conversion of the whole tensor in a network."""
    if not any(sides):
        return path
    model = onnx.load(str(path))
    graph = model.graph
    graph.initializer.extend([helper.make_tensor("boundary_scale", TensorProto.FLOAT, [], [BOUNDARY_SCALE]),
                              helper.make_tensor("boundary_zero_point", TensorProto.UINT8, [], [0])])
    head, tail = [], []
    if sides[0]:
        name = graph.input[0].name
        for node in graph.node:
            node.input[:] = [f"{name}_dequantized" if value == name else value for value in node.input]
        head = _round_trip(name, f"{name}_dequantized")
    if sides[1]:
        name = graph.output[0].name
        for node in graph.node:
            node.output[:] = [f"{name}_float" if value == name else value for value in node.output]
        tail = _round_trip(f"{name}_float", name)
    nodes = [*head, *graph.node, *tail]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(out))
    return Path(out)


def _round_trip(source: str, target: str) -> list[onnx.NodeProto]:
    """QuantizeLinear of ``source`` with the boundary's parameters, dequantized into ``target``."""
    params = ["boundary_scale", "boundary_zero_point"]
    return [helper.make_node("QuantizeLinear", [source, *params], [f"{source}_quantized"]),
            helper.make_node("DequantizeLinear", [f"{source}_quantized", *params], [target])]
