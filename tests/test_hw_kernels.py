"""Kernel-level ONNX Runtime tables: the fusion rules predict the kernels ONNX Runtime runs.

Each network is exported as the runtime runs it, ONNX Runtime writes the graph it has
optimised (``optimized_model_filepath``, the profiler's optimisation level), and the kernels
in that graph are compared with those the runtime's fusion rules give the candidate.
"""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import onnx
import onnxruntime as ort
import pytest
from torch import nn

from autocompress.candidate import LayerPolicy
from autocompress.hw.bundle_runner import open_session
from autocompress.hw.kernels import op_int8, op_module, op_shapes
from autocompress.hw.ops import BN_RELU, OpSignature
from autocompress.hw.predict import elided_reorders
from autocompress.hw.profile import Entry
from autocompress.hw.profiler import prepare_op
from autocompress.hw.runtimes import runtime_named
from autocompress.hw.runtimes.onnx import REORDER_INPUT, REORDER_OUTPUT, int8_layers, module_path
from autocompress.hw.signatures import candidate_signatures, space_signatures
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space

TINY = Path(__file__).parent / "spaces" / "tiny.yaml"
BATCH = 4


def optimised_nodes(path: Path, folder: Path) -> list[onnx.NodeProto]:
    """The nodes of the graph ONNX Runtime runs for the model at ``path``."""
    options = ort.SessionOptions()
    options.graph_optimization_level = open_session(path, 1).get_session_options().graph_optimization_level
    options.optimized_model_filepath = str(folder / "optimised.onnx")
    ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return list(onnx.load(options.optimized_model_filepath).graph.node)


def conv_with_sum(nodes: list[onnx.NodeProto]) -> int:
    """Convs that take a tensor to add to their output (NCHWc ``Sum`` input, the 4th)."""
    return sum(n.op_type == "Conv" and n.domain == "com.microsoft.nchwc" and len(n.input) == 4 for n in nodes)


def adds(nodes: list[onnx.NodeProto]) -> int:
    """Add kernels: float, or int8 (``QLinearAdd``, on an int8 network's uint8 tensors)."""
    return sum(n.op_type in ("Add", "QLinearAdd") for n in nodes)


CONV_KERNELS = ("Conv", "FusedConv", "QLinearConv")
INT8_KERNELS = ("QLinearConv", "QGemm", "QLinearMatMul")


def layer_of(node: onnx.NodeProto) -> str:
    """The module path of an optimised node (ONNX Runtime appends ``_token_<n>`` to the names
    of the nodes it fuses)."""
    return module_path(re.sub(r"_token_\d+$", "", node.name))


@pytest.fixture(scope="module")
def residual():
    """A float-width tiny network of two blocks, the second a residual one, and its space."""
    space = load_space(TINY)
    family = family_of(space)
    stages = [s.__class__(**{**s.__dict__, "depth": 2}) for s in family.largest_arch()]
    return space, family.uniform_candidate(stages, weight_bits=8, activation_bits=8)


@pytest.mark.parametrize("runtime", ["onnxruntime", "onnxruntime-int8"])
def test_fusion_rules_predict_the_kernels_onnx_runtime_runs(residual, runtime, tmp_path):
    space, candidate = residual
    chosen = runtime_named(runtime)
    kernels = candidate_signatures(space, candidate, chosen.bits_rule)
    fused = [k for k in kernels if k.fused]
    alone = [k for k in kernels if k.op == "add"]
    model = family_of(space).build_compressed(candidate)
    path = chosen.write_onnx(model, [space.input_shape(BATCH)], tmp_path,
                             int8_layers(model, chosen.bits_rule))
    nodes = optimised_nodes(path, tmp_path)
    # one table entry per kernel: a fused conv+add is one entry and one ONNX Runtime kernel,
    # an add ONNX Runtime runs on its own is an entry of its own
    assert (conv_with_sum(nodes), adds(nodes)) == (len(fused), len(alone))
    if runtime == "onnxruntime":
        assert [k.key.count(">") for k in fused] == [1] and not alone
        assert OpSignature.from_key(fused[0].key) == fused[0]
    else:
        assert not fused and len(alone) == 1


def test_a_fused_kernel_is_timed_as_one_unit(residual, tmp_path):
    space, candidate = residual
    chosen = runtime_named("onnxruntime")
    kernel = next(k for k in candidate_signatures(space, candidate, chosen.bits_rule) if k.fused)
    path = chosen.write_onnx(op_module(kernel).eval(), op_shapes(kernel, BATCH), tmp_path)
    nodes = optimised_nodes(path, tmp_path)
    assert conv_with_sum(nodes) == 1 and adds(nodes) == 0
    run = chosen.prepare(op_module(kernel).eval(), op_shapes(kernel, BATCH), threads=1)
    assert run()[0].shape == (BATCH, *kernel.fused[0].shape)


def test_resnet_blocks_fuse_conv_add_relu_as_the_rules_say(tmp_path):
    """A ResNet basic block ends conv > batch norm > add > ReLU: float ONNX Runtime runs that as
    one NCHWc conv with a Sum input and a ReLU activation, the conv-add-relu rule's one entry."""
    space = load_space(Path(__file__).parent / "spaces" / "resnet_tiny.yaml")
    family = family_of(space)
    candidate = family.uniform_candidate(family.largest_arch(), weight_bits=32, activation_bits=32)
    chosen = runtime_named("onnxruntime")
    fused = [k for k in candidate_signatures(space, candidate, chosen.bits_rule) if k.fused]
    model = family.build_compressed(candidate)
    nodes = optimised_nodes(chosen.write_onnx(model, [space.input_shape(BATCH)], tmp_path, set()), tmp_path)
    with_relu = [n for n in nodes if n.op_type == "Conv" and n.domain == "com.microsoft.nchwc" and len(n.input) == 4
                 and any(a.name == "activation" and a.s == b"Relu" for a in n.attribute)]
    assert fused and all(k.key.count(">") == 2 for k in fused)  # conv>add>relu
    assert (len(with_relu), conv_with_sum(nodes), adds(nodes)) == (len(fused), len(fused), 0)


def test_every_int8_layer_of_a_residual_network_runs_qlinearconv(residual, tmp_path):
    """With int8 activations, ONNX Runtime (x86) left the convs at a residual fork as float
    ``Conv`` between DequantizeLinear and QuantizeLinear; with the uint8 ones the export writes,
    each int8-keyed conv runs ``QLinearConv``."""
    space, candidate = residual
    chosen = runtime_named("onnxruntime-int8")
    model = family_of(space).build_compressed(candidate)
    quantized = int8_layers(model, chosen.bits_rule)
    path = chosen.write_onnx(model, [space.input_shape(BATCH)], tmp_path, quantized)
    kernels = {layer_of(n): n.op_type for n in optimised_nodes(path, tmp_path) if n.op_type in CONV_KERNELS}
    int8_convs = {name for name in quantized if name != "classifier"}
    assert int8_convs and set(kernels) == int8_convs
    assert set(kernels.values()) == {"QLinearConv"}


def test_a_float_layer_of_an_int8_network_keeps_its_own_float_constants(residual, tmp_path):
    """An untrained network's folded biases are equal, and the exporter stores them once: the
    quantizer then dequantized a float conv's bias along with its int8 neighbour's, and ONNX
    Runtime ran that conv unblocked. Each float conv reads float initializers only."""
    space, candidate = residual
    chosen = runtime_named("onnxruntime-int8")
    floating = "stages.0.1.dw.conv"
    mixed = candidate.__class__(candidate.stages, {**candidate.policy, floating: LayerPolicy()})
    model = family_of(space).build_compressed(mixed)
    quantized = int8_layers(model, chosen.bits_rule)
    assert floating not in quantized
    graph = onnx.load(str(chosen.write_onnx(model, [space.input_shape(BATCH)], tmp_path, quantized))).graph
    initializers = {tensor.name for tensor in graph.initializer}
    (conv,) = [n for n in graph.node if n.op_type == "Conv" and layer_of(n) == floating]
    assert set(conv.input[1:]) <= initializers


def _entries(int8_key: bool) -> list[OpSignature]:
    """One signature of each kind of the tiny space (conv by kernel size, groups and epilogue,
    linear, squeeze-excite) under the int8 runtime's rule, at int8 or float."""
    chosen = runtime_named("onnxruntime-int8")
    kinds = {}
    for s in space_signatures(load_space(TINY), chosen.bits_rule):
        if s.op in ("conv", "linear", "se") and s.quantized == int8_key:
            kinds.setdefault((s.op, s.kernel, s.groups > 1, s.epilogue), s)
    return list(kinds.values())


def entry_nodes(signature: OpSignature, folder: Path) -> list[str]:
    """The op types of the optimised graph the int8 runtime times for ``signature``'s entry."""
    chosen = runtime_named("onnxruntime-int8")
    path = chosen.write_onnx(op_module(signature).eval(), op_shapes(signature, BATCH), folder, op_int8(signature),
                             isolated=True)
    return [n.op_type for n in optimised_nodes(path, folder)]


@pytest.mark.parametrize("signature", _entries(int8_key=False), ids=lambda s: s.key)
def test_a_float_entry_of_the_int8_runtime_times_the_float_kernel(signature, tmp_path):
    """A float conv between quantize/dequantize nodes of its own had its weights quantized by
    ONNX Runtime (or dequantized on every call); inside an int8 network it runs as a float
    kernel, so its entry times it alone, float in and out."""
    assert not set(entry_nodes(signature, tmp_path)) & {*INT8_KERNELS, "QuantizeLinear", "DequantizeLinear"}


@pytest.mark.parametrize("signature", _entries(int8_key=True), ids=lambda s: s.key)
def test_an_int8_entry_times_its_int8_kernels_alone(signature, tmp_path):
    """An int8 conv or linear entry is the kernel alone on uint8 tensors, as in an int8 chain
    (no QuantizeLinear, Transpose, DequantizeLinear of its own); a squeeze-excite gate, float
    in and out as in the network, runs both its convs as ``QLinearConv``."""
    nodes = entry_nodes(signature, tmp_path)
    if signature.op == "se":
        assert nodes.count("QLinearConv") == 2 and not set(nodes) & {"Conv", "FusedConv"}
    else:
        assert len(nodes) == 1 and nodes[0] in INT8_KERNELS
    run, _ = prepare_op(runtime_named("onnxruntime-int8"), signature, BATCH, threads=1)
    assert len(run()[0]) == BATCH


def test_a_chain_of_blocked_kernels_keeps_the_layout_their_entries_reorder(tmp_path):
    """Each of two 16-channel convs, timed alone, converts its input into ONNX Runtime's
    blocked layout and its output out of it; chained in one network the tensor between them
    stays blocked, so the network runs one reorder at each end, and ``elided_reorders``
    counts that tensor once (per batch image, in millions)."""
    chosen = runtime_named("onnxruntime")
    first = OpSignature("conv", (16, 8, 8), out=16, kernel=1, epilogue=BN_RELU)
    second = OpSignature("conv", (16, 8, 8), out=16, kernel=3, epilogue=BN_RELU)
    layouts = [prepare_op(chosen, s, BATCH, threads=1)[1] for s in (first, second)]
    if not layouts[0]["reorders_input"]:
        pytest.skip("ONNX Runtime runs no blocked-layout conv on this CPU")
    assert layouts == [{"reorders_input": True, "reorders_output": True}] * 2
    chain = nn.Sequential(op_module(first), op_module(second)).eval()
    nodes = optimised_nodes(chosen.write_onnx(chain, op_shapes(first, BATCH), tmp_path), tmp_path)
    assert ([n.op_type for n in nodes].count(REORDER_INPUT), [n.op_type for n in nodes].count(REORDER_OUTPUT)) == (1, 1)
    entries = {s.key: Entry(median_ms=1.0, min_ms=1.0, spread_ms=0.0, samples=1, **layout)
               for s, layout in zip((first, second), layouts, strict=True)}
    profile = SimpleNamespace(entries=entries, device=SimpleNamespace(batch_size=BATCH))
    assert elided_reorders([first, second], profile) == 16 * 8 * 8 * BATCH / 1e6
    assert elided_reorders([second], profile) == 0.0


@pytest.mark.parametrize("squeeze_excite", [False, True])
def test_a_float_conv_between_int8_convs_runs_int8_as_its_key_says(squeeze_excite, tmp_path):
    """A float depthwise conv between an int8 expand and an int8 project conv reads a
    dequantized tensor and feeds a quantize node: ONNX Runtime quantizes its weights itself
    and runs ``QLinearConv``, and its key has int8 bits. With a squeeze-excite gate after it
    (whose multiply is float) it stays a float kernel, keyed float."""
    space = load_space(TINY)
    family = family_of(space)
    stages = [s.__class__(**{**s.__dict__, "depth": 1, "squeeze_excite": squeeze_excite})
              for s in family.largest_arch()]
    uniform = family.uniform_candidate(stages, weight_bits=8, activation_bits=8)
    floating = "stages.0.0.dw.conv"
    candidate = uniform.__class__(uniform.stages, {**uniform.policy, floating: LayerPolicy()})
    chosen = runtime_named("onnxruntime-int8")
    model = family.build_compressed(candidate)
    quantized = int8_layers(model, chosen.bits_rule)
    assert floating not in quantized
    path = chosen.write_onnx(model, [space.input_shape(BATCH)], tmp_path, quantized)
    (kernel,) = [n.op_type for n in optimised_nodes(path, tmp_path)  # a fused node is named by its ReLU
                 if n.op_type in CONV_KERNELS and layer_of(n).startswith("stages.0.0.dw.")]
    (keyed,) = [k for k in candidate_signatures(space, candidate, chosen.bits_rule)
                if k.op == "conv" and k.groups > 1]
    assert (kernel == "QLinearConv") == (not squeeze_excite) == keyed.quantized


def _gate_conversions(nodes: list[onnx.NodeProto]) -> tuple[bool, bool]:
    """Whether the squeeze-excite product (the graph's one gate ``Mul``) reads a dequantized
    tensor and whether its output is quantized."""
    writers = {name: node for node in nodes for name in node.output}
    (product,) = [n for n in nodes if n.op_type == "Mul"]
    return (any(writers[name].op_type == "DequantizeLinear" for name in product.input if name in writers),
            any(n.op_type == "QuantizeLinear" and product.output[0] in n.input for n in nodes))


@pytest.mark.parametrize("float_layer, sides", [(None, (True, True)), ("dw", (False, True)),
                                                ("project", (True, False))])
def test_a_gate_beside_int8_convs_converts_their_tensors_as_its_key_and_entry_do(float_layer, sides, tmp_path):
    """A squeeze-excite gate after an int8 conv dequantizes that conv's uint8 output itself,
    and one before an int8 conv quantizes its product for it: the network's optimised graph,
    the gate's key (``quantized_io``) and its table entry's optimised graph agree."""
    space = load_space(TINY)
    family = family_of(space)
    stages = [s.__class__(**{**s.__dict__, "depth": 1, "squeeze_excite": index == 0})
              for index, s in enumerate(family.largest_arch())]
    uniform = family.uniform_candidate(stages, weight_bits=8, activation_bits=8)
    policy = dict(uniform.policy)
    if float_layer is not None:
        policy[f"stages.0.0.{float_layer}.conv"] = LayerPolicy()
    candidate = uniform.__class__(uniform.stages, policy)
    chosen = runtime_named("onnxruntime-int8")
    model = family.build_compressed(candidate)
    (tmp_path / "net").mkdir()
    path = chosen.write_onnx(model, [space.input_shape(BATCH)], tmp_path / "net", int8_layers(model, chosen.bits_rule))
    (gate,) = [k for k in candidate_signatures(space, candidate, chosen.bits_rule) if k.op == "se"]
    assert gate.quantized and gate.quantized_io == sides
    assert OpSignature.from_key(gate.key) == gate
    (tmp_path / "entry").mkdir()
    entry = chosen.write_onnx(op_module(gate).eval(), op_shapes(gate, BATCH), tmp_path / "entry", op_int8(gate),
                              isolated=True, quantized_io=gate.quantized_io)
    assert _gate_conversions(optimised_nodes(path, tmp_path / "net")) == sides
    assert _gate_conversions(optimised_nodes(entry, tmp_path / "entry")) == sides
    assert gate in space_signatures(space, chosen.bits_rule)
