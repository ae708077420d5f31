"""The ops (``OpSignature``) of any traced torch model: of a built network, and of all the
compressed variants of one (the families that have no hand-written enumeration use these).

The torch.fx graph is walked in order; each node becomes a *site*: a conv with the batch
norm and ReLU that directly follow it (one fused kernel, as ``ConvBNAct``), a linear layer,
an element-wise add of two tensors, a ReLU on its own, a global average pool, a
squeeze-excite gate. Flatten, view, reshape, dropout and identity cost nothing (they are
views, or nothing at inference). Any other operation has no op type a profile can time,
and fails with one line naming it, rather than counting as zero.

A site records the channel groups (``compress.coupling``) of its input and output, so the
whole space's ops can be enumerated: each group's possible widths (its channels after
each pruning ratio) crossed with each layer's ranks and kernel precisions.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from autocompress.compress.coupling import ChannelGroup, is_depthwise, node_layouts, trace
from autocompress.compress.prune import keep_count
from autocompress.compress.quantize import activation_bits_of, weight_bits_of
from autocompress.errors import UserInputError
from autocompress.hw.signatures import BIAS, BN, BN_RELU, NONE, BitsRule, OpSignature, rank_of
from autocompress.models.blocks import SqueezeExcite

if TYPE_CHECKING:
    from autocompress.candidate import Candidate
    from autocompress.models.family import ModelFamily

FREE_MODULES = (nn.Flatten, nn.Identity, nn.Dropout)
FREE_FUNCTIONS = {torch.flatten, torch.reshape, F.dropout, getattr}
FREE_METHODS = {"flatten", "view", "reshape", "size", "dim", "contiguous"}
RELU = ({nn.ReLU}, {F.relu, torch.relu}, {"relu"})
ADD = (set(), {operator.add, torch.add, operator.iadd}, {"add"})
FREE = (FREE_MODULES, FREE_FUNCTIONS, FREE_METHODS)
SUPPORTED = ("conv (square, padding kernel//2) [+ batch norm [+ relu]], linear, add, relu, "
             "global average pool, squeeze-excite, flatten/view/reshape/dropout")


class UnsupportedOpError(UserInputError):
    """A model runs an operation that no latency-table op type describes."""


@dataclass(frozen=True)
class Site:
    """One kernel of the network, with the channel groups its input and output belong to."""

    op: str
    shape: tuple[int, ...]
    out: int = 0
    kernel: int = 0
    stride: int = 1
    groups: int = 1
    epilogue: str = NONE
    module: nn.Module | None = None
    name: str = ""
    in_group: ChannelGroup | None = None
    out_group: ChannelGroup | None = None

    def signature(self, rule: BitsRule) -> OpSignature:
        module = self.module
        bits = None if module is None else self.bits(rule, weight_bits_of(module), activation_bits_of(module))
        return OpSignature(self.op, self.shape, self.out, self.kernel, self.stride, self.groups,
                           self.epilogue, bits)

    def bits(self, rule: BitsRule, weight_bits: int, activation_bits: int) -> tuple[int, int] | None:
        """The kernel precision of this site when its layer has these bits."""
        if self.op in ("conv", "linear"):
            return rule.kernel_bits(weight_bits, activation_bits)
        return rule.gate_bits(weight_bits, activation_bits) if self.op == "se" else None


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
        return tuple(dims or ()) in ((2, 3), (-2, -1))
    return False


class _Walker:
    """Turns a traced, shape-propagated graph into sites, fusing conv + batch norm + ReLU."""

    def __init__(self, model: nn.Module, graph: fx.Graph, where: str) -> None:
        self.modules = dict(model.named_modules())
        self.groups = {node: layout.parts[0].group for node, layout in node_layouts(model, graph).items()
                       if len(layout.parts) == 1 and layout.parts[0].repeat == 1}
        self.graph, self.where = graph, where
        self.fused: set[fx.Node] = set()

    def _shape(self, node: fx.Node) -> tuple[int, ...]:
        return tuple(node.meta["tensor_meta"].shape[1:])

    def _unsupported(self, node: fx.Node, what: str) -> UnsupportedOpError:
        return UnsupportedOpError(f"{self.where}: op '{node.name}' ({what}) has no latency-table op type "
                                  f"(supported: {SUPPORTED})")

    def _only_user(self, node: fx.Node) -> fx.Node | None:
        users = list(node.users)
        return users[0] if len(users) == 1 else None

    def _conv(self, node: fx.Node, conv: nn.Conv2d) -> Site:
        kernel, stride = conv.kernel_size, conv.stride
        if kernel[0] != kernel[1] or stride[0] != stride[1] or conv.dilation != (1, 1) or \
                conv.padding != (kernel[0] // 2, kernel[0] // 2):
            raise self._unsupported(node, f"conv {kernel} stride {stride} padding {conv.padding} "
                                          f"dilation {conv.dilation}")
        epilogue, last = NONE, node
        bn = self._only_user(node)
        if bn is not None and bn.op == "call_module" and isinstance(self.modules[bn.target], nn.BatchNorm2d):
            epilogue, last = BN, bn
            self.fused.add(bn)
            act = self._only_user(bn)
            if act is not None and _is(act, self.modules, RELU):
                epilogue, last = BN_RELU, act
                self.fused.add(act)
        source = node.all_input_nodes[0]
        return Site("conv", self._shape(source), conv.out_channels, kernel[0], stride[0], conv.groups, epilogue,
                    conv, node.target, self.groups.get(source), self.groups.get(last))

    def _site(self, node: fx.Node) -> Site | None:
        modules = self.modules
        module = modules.get(node.target) if node.op == "call_module" else None
        inputs = [n for n in node.all_input_nodes if n.op != "get_attr"]
        source = inputs[0] if inputs else None
        if node.op in ("placeholder", "output") or node in self.fused:
            return None
        if isinstance(module, nn.Conv2d):
            return self._conv(node, module)
        if isinstance(module, nn.Linear):
            if len(self._shape(source)) != 1:
                raise self._unsupported(node, f"linear on a {len(self._shape(source)) + 1}-d tensor")
            epilogue = BIAS if module.bias is not None else NONE
            return Site("linear", self._shape(source), module.out_features, epilogue=epilogue, module=module,
                        name=node.target, in_group=self.groups.get(source), out_group=self.groups.get(node))
        if isinstance(module, SqueezeExcite):
            return Site("se", self._shape(source), module.reduce.out_channels, module=module.reduce,
                        name=f"{node.target}.reduce", in_group=self.groups.get(source))
        if _is(node, modules, RELU):
            return Site("relu", self._shape(source), in_group=self.groups.get(source))
        if _is(node, modules, ADD) and len(inputs) == 2 and self._shape(inputs[0]) == self._shape(inputs[1]):
            return Site("add", self._shape(node), in_group=self.groups.get(node))
        if _is_global_pool(node, modules):
            return Site("pool", self._shape(source), in_group=self.groups.get(source))
        if _is(node, modules, FREE):
            return None
        what = type(module).__name__ if module is not None else getattr(node.target, "__name__", str(node.target))
        raise self._unsupported(node, what)

    def sites(self) -> list[Site]:
        return [site for node in self.graph.nodes if (site := self._site(node)) is not None]


def model_sites(model: nn.Module, image_shape: tuple[int, ...], where: str) -> list[Site]:
    """The sites of ``model`` for one image of ``image_shape`` (C,H,W); ``where`` names the
    model in the error an unsupported op raises."""
    graph = trace(model)
    module = fx.GraphModule(model, graph)
    was_training = model.training
    with torch.no_grad():
        ShapeProp(module.eval()).propagate(torch.zeros((1, *image_shape)))
    model.train(was_training)
    return _Walker(model, graph, where).sites()


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


def _widths(group: ChannelGroup | None, full: int, variants: Variants) -> set[int]:
    if group is None or not group.prunable or not set(group.producers) & variants.prunable:
        return {full}
    return {keep_count(full, ratio) for ratio in variants.prune_ratios}


def _site_ops(site: Site, width_in: int, width_out: int, rank_ratio: float,
              bits: tuple[int, int] | None) -> list[OpSignature]:
    """The kernels of ``site`` as ``apply_policy`` leaves it: its input and output channels
    pruned to ``width_in`` and ``width_out``, factorised at ``rank_ratio`` (rank from the
    unpruned layer; 1: not factorised), at kernel precision ``bits``."""
    spatial = site.shape[1:]
    if site.op in ("conv", "linear") and site.groups == 1:
        if rank_ratio >= 1.0:
            return [OpSignature(site.op, (width_in, *spatial), width_out, site.kernel, site.stride, 1, site.epilogue,
                                bits)]
        rank = rank_of(site.module.weight.shape[0], site.module.weight[0].numel(), rank_ratio)
        reduced = tuple(-(-size // site.stride) for size in spatial)
        return [OpSignature(site.op, (width_in, *spatial), rank, site.kernel, site.stride, 1, NONE, bits),
                OpSignature(site.op, (rank, *reduced), width_out, 1 if site.op == "conv" else 0, 1, 1, site.epilogue,
                            bits)]
    if site.op == "conv" and is_depthwise(site.module):  # its width is its input's
        return [OpSignature("conv", (width_in, *spatial), width_in, site.kernel, site.stride, width_in,
                            site.epilogue, bits)]
    if site.op == "conv":  # grouped: never pruned nor factorised
        return [OpSignature("conv", site.shape, site.out, site.kernel, site.stride, site.groups, site.epilogue, bits)]
    return [OpSignature(site.op, (width_in, *spatial), site.out, bits=bits)]


def space_ops(model: nn.Module, image_shape: tuple[int, ...], variants: Variants, where: str) -> set[OpSignature]:
    """Every kernel any compressed variant of the (uncompressed) ``model`` can run."""
    found: set[OpSignature] = set()
    for site in model_sites(model, image_shape, where):
        layer = site.op in ("conv", "linear")
        widths_out = _widths(site.out_group, site.out, variants) if layer else {site.out}
        ranks = variants.rank_ratios if site.name in variants.factorisable else (1.0,)
        for width_in, width_out, ratio, bits in itertools.product(
                _widths(site.in_group, site.shape[0], variants), widths_out, ranks,
                variants.bits if layer else variants.gate_bits if site.op == "se" else (None,)):
            found.update(_site_ops(site, width_in, width_out, ratio, bits))
    return found


def candidate_ops(sites: list[Site], candidate: Candidate, rule: BitsRule) -> list[OpSignature]:
    """The kernels of ``candidate`` computed from the sites of its uncompressed network and its
    policy: exactly ``graph_ops`` of the built candidate, without building it (a coupled
    group is pruned at the largest ratio its layers ask, as ``apply_policy`` does it)."""
    ratios = {name: layer.sparsity for name, layer in candidate.policy.items() if layer.sparsity_kind == "channel"}

    def width(group: ChannelGroup | None, full: int) -> int:
        ratio = max((ratios.get(name, 0.0) for name in group.producers), default=0.0) if group else 0.0
        return keep_count(full, ratio)

    ops = []
    for site in sites:
        layer = candidate.layer_policy(site.name)
        ops += _site_ops(site, width(site.in_group, site.shape[0]), width(site.out_group, site.out),
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
