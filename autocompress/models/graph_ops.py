"""The ops (``OpSignature``) of any traced torch model: of a built network, and of all the
compressed variants of one (the families that have no hand-written enumeration use these).

The model is traced with torch.fx and run once, in inference mode, on one zero image
(``_Propagation``), which records each node's output shape and whether it computes
anything: a node whose result is no tensor (a shape query, ``getattr``, a size
comparison) or only a view of its input (flatten, view, reshape of a contiguous tensor,
transpose, chunk, identity, dropout at inference) is free. Every other node becomes a
*site*: a conv with the batch norm and ReLU that directly follow it (one fused kernel, as
``ConvBNAct``), a linear layer (on any number of dims), an element-wise add of two
same-shaped tensors, a ReLU, a global average pool, a squeeze-excite gate
(``hw.kernels.SqueezeExcite``), and everything else a *fixed op* (``hw.fixed_ops``): pooling,
activations, norms, concat, multiplies, copies of transposed tensors, ... keyed by its
callee, arguments and input shapes. Nothing traceable is refused for lack of an op type;
an op that cannot be described so as to be timed alone is one line naming it.

A site records the channel layouts (``compress.coupling.Layout``) of its inputs and
output, so the whole space's ops can be enumerated: each tensor's possible widths (its
channels after each pruning ratio of the groups it is made of) crossed with each layer's
ranks and kernel precisions.
"""

from __future__ import annotations

import dataclasses
import itertools
import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.utils._pytree import tree_flatten

from autocompress.compress.coupling import ChannelGroup, Layout, is_depthwise, node_layouts, trace
from autocompress.compress.quantize import activation_bits_of, weight_bits_of
from autocompress.errors import UserInputError
from autocompress.hw.fixed_ops import FixedCall, concat_inputs
from autocompress.hw.kernels import SqueezeExcite
from autocompress.hw.ops import BIAS, BN, BN_RELU, FIXED, NONE, BitsRule, OpSignature, rank_of

if TYPE_CHECKING:
    from autocompress.candidate import Candidate
    from autocompress.models.family import ModelFamily

RELU = ({nn.ReLU}, {F.relu, torch.relu, torch.relu_}, {"relu", "relu_"})
ADD = (set(), {operator.add, torch.add, operator.iadd}, {"add", "add_"})


class UnsupportedOpError(UserInputError):
    """A model runs an operation that cannot be traced, run or timed alone."""


def _is(node: fx.Node, modules: dict[str, nn.Module], kinds: tuple) -> bool:
    """Whether ``node`` calls one of ``kinds``: (module classes, functions, method names)."""
    classes, functions, methods = kinds
    if node.op == "call_module":
        return isinstance(modules[node.target], tuple(classes))
    if node.op == "call_function":
        return node.target in functions
    return node.op == "call_method" and node.target in methods


def _is_global_pool(node: fx.Node, modules: dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        module = modules[node.target]
        return isinstance(module, nn.AdaptiveAvgPool2d) and module.output_size in (1, (1, 1))
    if node.op == "call_function" and node.target is F.adaptive_avg_pool2d:
        return node.args[1:2] in ((1,), ((1, 1),)) or node.kwargs.get("output_size") in (1, (1, 1))
    if node.op == "call_method" and node.target == "mean":
        dims = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim")
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get("keepdim", False)
        return tuple(dims or ()) in ((2, 3), (-2, -1)) and not keepdim
    return False


def _padding(conv: nn.Conv2d) -> tuple[int, int] | None:
    """``conv``'s padding per side as numbers (``None``: asymmetric 'same' padding)."""
    if conv.padding == "valid":
        return 0, 0
    if conv.padding == "same":
        total = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size, strict=True)]
        return None if any(t % 2 for t in total) else (total[0] // 2, total[1] // 2)
    return conv.padding


def _tensors(value: Any) -> list[torch.Tensor]:
    return [leaf for leaf in tree_flatten(value)[0] if isinstance(leaf, torch.Tensor)]


@dataclass
class _Record:
    """What one node did when the model ran: output shape (one image), whether it computed
    anything, and its arguments with tensor inputs as ``{"tensor": i}`` and other nodes'
    values filled in (a fixed op's description)."""

    shape: tuple[int, ...] | None
    free: bool
    args: tuple
    kwargs: dict
    inputs: list[fx.Node]
    input_tensors: list[torch.Tensor]


class _Propagation(fx.Interpreter):
    """Runs the traced model once, recording a ``_Record`` per node."""

    def __init__(self, module: fx.GraphModule) -> None:
        super().__init__(module)
        self.records: dict[fx.Node, _Record] = {}

    def run_node(self, node: fx.Node) -> Any:
        args, kwargs = self.fetch_args_kwargs_from_env(node)
        before = [(tensor.untyped_storage().data_ptr(), tensor._version) for tensor in _tensors((args, kwargs))]
        result = super().run_node(node)
        if node.op in ("placeholder", "get_attr", "output"):
            shape = tuple(result.shape[1:]) if node.op == "placeholder" else None
            self.records[node] = _Record(shape, True, (), {}, [], [])
            return result
        outputs = _tensors(result)
        pointers = {pointer for pointer, _ in before}
        unchanged = all(t._version == version for t, (_, version) in zip(_tensors((args, kwargs)), before,
                                                                         strict=True))
        free = not outputs or (unchanged and all(t.untyped_storage().data_ptr() in pointers for t in outputs))
        inputs = [n for n in node.all_input_nodes if isinstance(self.env.get(n), torch.Tensor)]
        slots = {n: index for index, n in enumerate(n for n in inputs if n.op != "get_attr")}
        slots |= {n: -1 for n in inputs if n.op == "get_attr"}
        described = fx.node.map_arg((node.args, node.kwargs), lambda n: (
            {"param": list(self.env[n].shape)} if n.op == "get_attr" and n in slots
            else {"tensor": slots[n]} if n in slots else self.env[n]))
        shape = tuple(result.shape[1:]) if isinstance(result, torch.Tensor) else None
        self.records[node] = _Record(shape, free, *described, inputs, [self.env[n] for n in inputs])
        return result


@dataclass(frozen=True)
class Site:
    """One kernel of the network, with the channel layouts of its inputs and output.

    A fixed op (``op == "fixed"``) keeps its call (``call``, with ``module`` for a
    ``torch.nn`` module whose constants may name its channel count) and every tensor
    input's shape and layout (``inputs``); a parameter input (``get_attr``) has no batch dim.
    """

    op: str
    shape: tuple[int, ...]
    out: int = 0
    kernel: int = 0
    stride: int = 1
    groups: int = 1
    epilogue: str = NONE
    padding: int = -1
    dilation: int = 1
    module: nn.Module | None = None
    name: str = ""
    in_layout: Layout | None = None
    out_layout: Layout | None = None
    call: FixedCall | None = None
    inputs: tuple[tuple[tuple[int, ...], Layout | None], ...] = ()

    def signature(self, rule: BitsRule) -> OpSignature:
        module = self.module if self.op in ("conv", "linear", "se") else None
        bits = None if module is None else self.bits(rule, weight_bits_of(module), activation_bits_of(module))
        if self.op == FIXED:
            return _fixed_signature(self, [shape for shape, _ in self.inputs])
        return OpSignature(self.op, self.shape, self.out, self.kernel, self.stride, self.groups,
                           self.epilogue, bits, padding=self.padding, dilation=self.dilation)

    def bits(self, rule: BitsRule, weight_bits: int, activation_bits: int) -> tuple[int, int] | None:
        """The kernel precision of this site when its layer has these bits."""
        if self.op in ("conv", "linear"):
            return rule.kernel_bits(weight_bits, activation_bits)
        return rule.gate_bits(weight_bits, activation_bits) if self.op == "se" else None


def _with_width(shape: tuple[int, ...], layout: Layout | None, width: int) -> tuple[int, ...]:
    """``shape`` (one image's) with its channel dim (the first, or the last of a channels-last
    tensor: the one the layout's full width describes) at ``width``; a tensor whose layout
    describes neither (a reshaped view of refused channels) keeps its shape."""
    if layout is None or width == layout.full or not shape:
        return shape
    if shape[0] == layout.full:
        return (width, *shape[1:])
    if shape[-1] == layout.full:
        return (*shape[:-1], width)
    return shape


def _fixed_signature(site: Site, shapes: Sequence[tuple[int, ...]]) -> OpSignature:
    """The fixed op of ``site`` with tensor inputs of ``shapes`` (pruned widths): a
    channel-count constant of its module and its parameters' channel dims follow its first
    input's width."""
    call = site.call
    if call.concat:
        shape, count = concat_inputs(shapes)
        return OpSignature(FIXED, shape, count, call=call)
    original = site.inputs[0][0]
    changed = [index for index, (now, was) in enumerate(zip(shapes[0], original, strict=True)) if now != was]
    if changed:
        full, width = original[changed[0]], shapes[0][changed[0]]
        if site.module is not None:
            call = dataclasses.replace(FixedCall.of_module(site.module, site.name, channels=width), order=call.order)
        call = call.with_param_width(full, width)
    return OpSignature(FIXED, shapes[0], call=call, inputs=tuple(shapes[1:]))


class _Walker:
    """Turns a traced, propagated graph into sites, fusing conv + batch norm + ReLU."""

    def __init__(self, model: nn.Module, graph: fx.Graph, records: dict[fx.Node, _Record], where: str) -> None:
        self.modules = dict(model.named_modules())
        self.layouts = node_layouts(model, graph)
        self.graph, self.records, self.where = graph, records, where
        self.fused: set[fx.Node] = set()

    def _unsupported(self, node: fx.Node, what: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.where}: op '{node.name}' ({what}) has no latency-table op type")

    def _only_user(self, node: fx.Node) -> fx.Node | None:
        users = list(node.users)
        return users[0] if len(users) == 1 else None

    def _conv(self, node: fx.Node, conv: nn.Conv2d) -> Site:
        kernel, stride, padding, dilation = conv.kernel_size, conv.stride, _padding(conv), conv.dilation
        if padding is None or len({kernel[0], kernel[1]}) * len({stride[0], stride[1]}) * len(set(padding)) * len(
                set(dilation)) != 1 or conv.padding_mode != "zeros":
            raise self._unsupported(node, f"conv {kernel} stride {stride} padding {conv.padding} dilation {dilation} "
                                          f"padding mode {conv.padding_mode}: the latency table keys square "
                                          "kernels, strides, paddings and dilations with zero padding")
        epilogue, last = (BIAS if conv.bias is not None else NONE), node
        bn = self._only_user(node)
        if bn is not None and bn.op == "call_module" and isinstance(self.modules[bn.target], nn.BatchNorm2d):
            epilogue, last = BN, bn
            self.fused.add(bn)
            act = self._only_user(bn)
            if act is not None and _is(act, self.modules, RELU):
                epilogue, last = BN_RELU, act
                self.fused.add(act)
        source = node.all_input_nodes[0]
        return Site("conv", self.records[source].shape, conv.out_channels, kernel[0], stride[0], conv.groups,
                    epilogue, -1 if padding[0] == kernel[0] // 2 else padding[0], dilation[0], conv, node.target,
                    self.layouts.get(source), self.layouts.get(last))

    def _fixed(self, node: fx.Node, module: nn.Module | None) -> Site:
        record = self.records[node]
        try:
            if module is not None:
                call = FixedCall.of_module(module, f"{self.where}: op '{node.name}'")
            elif node.op == "call_method":
                call = FixedCall.of_method(node.target, record.args, record.kwargs, f"{self.where}: op '{node.name}'")
            else:
                call = FixedCall.of_function(node.target, record.args, record.kwargs,
                                             f"{self.where}: op '{node.name}'")
        except UserInputError as error:
            raise UnsupportedOpError(str(error)) from None
        tensor_inputs = [n for n in record.inputs if n.op != "get_attr"]
        call = call.with_order([t for n, t in zip(record.inputs, record.input_tensors, strict=True)
                                if n.op != "get_attr"])
        inputs = tuple((self.records[n].shape, self.layouts.get(n)) for n in tensor_inputs)
        return Site(FIXED, inputs[0][0] if inputs else (), module=module, name=node.name,
                    in_layout=inputs[0][1] if inputs else None, out_layout=self.layouts.get(node), call=call,
                    inputs=inputs)

    def _site(self, node: fx.Node) -> Site | None:
        if node.op in ("placeholder", "output", "get_attr") or node in self.fused or self.records[node].free:
            return None
        modules = self.modules
        module = modules.get(node.target) if node.op == "call_module" else None
        inputs = [n for n in self.records[node].inputs if n.op != "get_attr"]
        source = inputs[0] if inputs else None
        shape = self.records[source].shape if source is not None else None
        if isinstance(module, nn.Conv2d):
            return self._conv(node, module)
        if isinstance(module, nn.Linear):
            epilogue = BIAS if module.bias is not None else NONE
            return Site("linear", shape, module.out_features, epilogue=epilogue, module=module, name=node.target,
                        in_layout=self.layouts.get(source), out_layout=self.layouts.get(node))
        if isinstance(module, SqueezeExcite):
            return Site("se", shape, module.reduce.out_channels, module=module.reduce,
                        name=f"{node.target}.reduce", in_layout=self.layouts.get(source))
        if _is(node, modules, RELU) and len(inputs) == 1:
            return Site("relu", shape, in_layout=self.layouts.get(source))
        if _is(node, modules, ADD) and len(inputs) == 2 and shape == self.records[inputs[1]].shape == \
                self.records[node].shape:
            return Site("add", self.records[node].shape, in_layout=self.layouts.get(node))
        if _is_global_pool(node, modules) and len(shape) == 3:
            return Site("pool", shape, in_layout=self.layouts.get(source))
        return self._fixed(node, module)

    def sites(self) -> list[Site]:
        return [site for node in self.graph.nodes if (site := self._site(node)) is not None]


def model_sites(model: nn.Module, image_shape: tuple[int, ...], where: str) -> list[Site]:
    """The sites of ``model`` for one image of ``image_shape`` (C,H,W), traced and run as the
    model runs at inference; ``where`` names the model in the error an op raises."""
    was_training = model.training
    model.eval()
    try:
        graph = trace(model)
        propagation = _Propagation(fx.GraphModule(model, graph))
        with torch.no_grad():
            propagation.run(torch.zeros((1, *image_shape)))
    except UserInputError:
        raise
    except Exception as error:  # the user's model: any failure to trace or run is one line
        first = (str(error).strip().splitlines() or [""])[0]
        raise UnsupportedOpError(f"{where}: the model cannot be traced and run on one {image_shape} image "
                                 f"in inference mode: {type(error).__name__}: {first}") from None
    finally:
        model.train(was_training)
    return _Walker(model, graph, propagation.records, where).sites()


def graph_ops(model: nn.Module, image_shape: tuple[int, ...], rule: BitsRule, where: str) -> list[OpSignature]:
    """The kernels a built (compressed) ``model`` runs for one image, in order."""
    return [site.signature(rule) for site in model_sites(model, image_shape, where)]


@dataclass(frozen=True)
class Variants:
    """What a space may do to a network's layers: pruning ratios of the groups with a
    producer in ``prunable``, rank ratios of the layers in ``factorisable``, kernel precisions
    (of convs and linears, ``bits``; of squeeze-excite gates, ``gate_bits``)."""

    prune_ratios: tuple[float, ...]
    rank_ratios: tuple[float, ...]
    bits: tuple[tuple[int, int] | None, ...]
    gate_bits: tuple[tuple[int, int] | None, ...]
    prunable: frozenset[str]
    factorisable: frozenset[str]

    def may_prune(self, group: ChannelGroup) -> bool:
        return group.prunable and bool(set(group.producers) & self.prunable)


def _widths(layout: Layout | None, full: int, variants: Variants) -> set[int]:
    if layout is None:
        return {full}
    return layout.widths(variants.prune_ratios, variants.may_prune)


def _site_ops(site: Site, width_in: int, width_out: int, rank_ratio: float,
              bits: tuple[int, int] | None) -> list[OpSignature]:
    """The kernels of a conv, linear, relu, add, pool or se ``site`` as ``apply_policy``
    leaves it: its input and output channels pruned to ``width_in`` and ``width_out``,
    factorised at ``rank_ratio`` (rank from the unpruned layer; 1: not factorised), at
    kernel precision ``bits``."""
    shape_in = _with_width(site.shape, site.in_layout, width_in)
    conv = {"padding": site.padding, "dilation": site.dilation}
    if site.op in ("conv", "linear") and site.groups == 1:
        if rank_ratio >= 1.0:
            return [OpSignature(site.op, shape_in, width_out, site.kernel, site.stride, 1, site.epilogue, bits,
                                **conv)]
        rank = rank_of(site.module.weight.shape[0], site.module.weight[0].numel(), rank_ratio)
        first = OpSignature(site.op, shape_in, rank, site.kernel, site.stride, 1, NONE, bits, **conv)
        return [first, OpSignature(site.op, first.out_shape, width_out, 1 if site.op == "conv" else 0, 1, 1,
                                   site.epilogue, bits)]
    if site.op == "conv" and is_depthwise(site.module):  # its width is its input's
        return [OpSignature("conv", shape_in, width_in, site.kernel, site.stride, width_in, site.epilogue, bits,
                            **conv)]
    if site.op == "conv":  # grouped: pruned an equal count per group, never factorised
        return [OpSignature("conv", shape_in, width_out, site.kernel, site.stride, site.groups, site.epilogue, bits,
                            **conv)]
    return [OpSignature(site.op, shape_in, site.out, bits=bits)]


def _fixed_ops(site: Site, width: Callable[[Layout | None, int], Iterable[int]]) -> list[OpSignature]:
    """The fixed op of ``site`` at every combination of its inputs' widths that ``width``
    (layout, full width -> widths) gives; inputs of one layout take the same width."""
    if site.call.concat:
        shape, count = concat_inputs([shape for shape, _ in site.inputs])
        return [OpSignature(FIXED, _with_width(shape, site.out_layout, w), count, call=site.call)
                for w in width(site.out_layout, shape[0])]
    layouts = list(dict.fromkeys(layout for _, layout in site.inputs))
    found = []
    for chosen in itertools.product(*(list(width(layout, _full(site, layout))) for layout in layouts)):
        by_layout = dict(zip(layouts, chosen, strict=True))
        found.append(_fixed_signature(site, [_with_width(shape, layout, by_layout[layout])
                                             for shape, layout in site.inputs]))
    return found


def _full(site: Site, layout: Layout | None) -> int:
    return layout.full if layout is not None else next(shape[0] for shape, lay in site.inputs if lay is layout)


def space_ops(model: nn.Module, image_shape: tuple[int, ...], variants: Variants, where: str) -> set[OpSignature]:
    """Every kernel any compressed variant of the (uncompressed) ``model`` can run."""
    found: set[OpSignature] = set()
    for site in model_sites(model, image_shape, where):
        if site.op == FIXED:
            found.update(_fixed_ops(site, lambda layout, full: _widths(layout, full, variants)))
            continue
        layer = site.op in ("conv", "linear")
        widths_out = _widths(site.out_layout, site.out, variants) if layer else {site.out}
        ranks = variants.rank_ratios if site.name in variants.factorisable else (1.0,)
        for width_in, width_out, ratio, bits in itertools.product(
                _widths(site.in_layout, _channels(site), variants), widths_out, ranks,
                variants.bits if layer else variants.gate_bits if site.op == "se" else (None,)):
            found.update(_site_ops(site, width_in, width_out, ratio, bits))
    return found


def _channels(site: Site) -> int:
    return site.in_layout.full if site.in_layout is not None else site.shape[0]


def candidate_ops(sites: list[Site], candidate: Candidate, rule: BitsRule) -> list[OpSignature]:
    """The kernels of ``candidate`` computed from the sites of its uncompressed network and its
    policy: exactly ``graph_ops`` of the built candidate, without building it (a coupled
    group is pruned at the largest ratio its layers ask, as ``apply_policy`` does it)."""
    ratios = {name: layer.sparsity for name, layer in candidate.policy.items() if layer.sparsity_kind == "channel"}

    def ratio_of(group: ChannelGroup) -> float:
        return max((ratios.get(name, 0.0) for name in group.producers), default=0.0)

    def width(layout: Layout | None, full: int) -> list[int]:
        return [full if layout is None else layout.width(ratio_of)]

    ops = []
    for site in sites:
        if site.op == FIXED:
            ops += _fixed_ops(site, width)
            continue
        layer = candidate.layer_policy(site.name)
        ops += _site_ops(site, width(site.in_layout, _channels(site))[0],
                         width(site.out_layout, site.out)[0] if site.op in ("conv", "linear") else site.out,
                         layer.rank_ratio, site.bits(rule, layer.weight_bits, layer.activation_bits))
    return ops


def traced_space_ops(family: ModelFamily, archs: Iterable[list], rule: BitsRule) -> list[OpSignature]:
    """Every kernel of ``family``'s space: ``space_ops`` of each architecture in ``archs``,
    with the space's pruning ratios, ranks and precisions on the layers that allow them."""
    space, found = family.space, set()
    layer = space.choices.layer
    for arch in archs:
        specs = family.compressible_layers(arch)
        variants = Variants(
            prune_ratios=tuple(sorted(set(layer.sparsity) | {0.0})) if "channel" in layer.sparsity_kind else (0.0,),
            rank_ratios=tuple(sorted(set(layer.rank_ratio) | {1.0})),
            bits=tuple(rule.classes(space)),
            gate_bits=tuple(rule.classes(space)) if rule.quantized_se else (None,),
            prunable=frozenset(spec.name for spec in specs if spec.channel_prunable),
            factorisable=frozenset(spec.name for spec in specs if spec.factorisable))
        found |= space_ops(family.build(arch), space.input_shape()[1:], variants, family.label)
    return sorted(found)

