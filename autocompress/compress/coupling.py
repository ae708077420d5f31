"""Channel groups of a traced model: which layers' output channels must be pruned together.

Every tensor in a model's torch.fx graph carries a *channel space*. A conv or linear layer
starts a new one (it *produces* it) and *consumes* its input's; channel-wise operations
(batch norm, activations, depthwise convs, global pooling, modules with a
``prune_channels`` method such as squeeze-excite) keep their input's; an element-wise add
or multiply of two tensors joins their spaces into one, since the channels meet index by
index. A group is one such joined space: all its producers lose the same channels (the
ones with the lowest L1 importance summed over them), and its followers and consumers are
sliced to match. That is how a residual network is channel-pruned.

A space that reaches the model's input or output, a concat, or any operation this
analysis does not know cannot be pruned; its group records why.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import fx, nn

PASS_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.Sigmoid, nn.Identity,
                nn.Dropout, nn.AdaptiveAvgPool2d, nn.Flatten)
PASS_FUNCTIONS = {F.relu, torch.relu, F.relu6, F.hardswish, F.silu, torch.sigmoid, torch.flatten,
                  F.adaptive_avg_pool2d, F.dropout}
PASS_METHODS = {"relu", "flatten", "view", "mean", "sigmoid"}
MERGE_FUNCTIONS = {operator.add, torch.add, operator.iadd, operator.mul, torch.mul}
MERGE_METHODS = {"add", "mul"}
SHAPE_QUERIES = {"size", "dim"}
"""Method calls that read a tensor's shape and return no tensor."""


class ChannelTracer(fx.Tracer):
    """Keeps convs and linears (their quantized subclasses too) and modules that can prune
    their own channels as single graph nodes."""

    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        return (isinstance(module, (nn.Conv2d, nn.Linear)) or hasattr(module, "prune_channels")
                or super().is_leaf_module(module, qualname))


def trace(model: nn.Module) -> fx.Graph:
    return ChannelTracer().trace(model)


def is_depthwise(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and module.groups > 1
            and module.groups == module.in_channels == module.out_channels)


def is_dense(module: nn.Module) -> bool:
    """A conv or linear layer that mixes all its input channels (a group's producer)."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)


@dataclass
class ChannelGroup:
    """Layers whose output channels are one space: pruned together, or not at all."""

    producers: list[str] = field(default_factory=list)
    followers: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    """Why the group cannot be pruned (empty if it can)."""

    @property
    def prunable(self) -> bool:
        return bool(self.producers) and not self.refusals


def _tensor_inputs(node: fx.Node) -> list[fx.Node]:
    return [n for n in node.all_input_nodes if n.op != "get_attr"]


class _Spaces:
    """Union-find over the graph's nodes; a root stands for one channel space."""

    def __init__(self) -> None:
        self.parent: dict[fx.Node, fx.Node] = {}
        self.groups: dict[fx.Node, ChannelGroup] = {}

    def new(self, node: fx.Node) -> None:
        self.parent[node] = node
        self.groups[node] = ChannelGroup()

    def root(self, node: fx.Node) -> fx.Node:
        while self.parent[node] is not node:
            self.parent[node] = self.parent[self.parent[node]]
            node = self.parent[node]
        return node

    def group(self, node: fx.Node) -> ChannelGroup:
        return self.groups[self.root(node)]

    def same(self, node: fx.Node, source: fx.Node) -> None:
        self.parent[node] = self.root(source)

    def join(self, nodes: list[fx.Node]) -> None:
        roots = list(dict.fromkeys(self.root(n) for n in nodes))
        for other in roots[1:]:
            self.parent[other] = roots[0]
            kept, gone = self.groups[roots[0]], self.groups.pop(other)
            for name in ("producers", "followers", "consumers", "refusals"):
                getattr(kept, name).extend(getattr(gone, name))


def _visit_module(spaces: _Spaces, node: fx.Node, module: nn.Module) -> None:
    source = _tensor_inputs(node)[0]
    if is_dense(module):
        spaces.group(source).consumers.append(node.target)
        spaces.new(node)
        spaces.group(node).producers.append(node.target)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm1d)) or is_depthwise(module) or hasattr(
            module, "prune_channels"):
        spaces.same(node, source)
        spaces.group(node).followers.append(node.target)
    elif isinstance(module, PASS_MODULES):
        spaces.same(node, source)
    else:
        _opaque(spaces, node, f"{type(module).__name__} '{node.target}'")


def _opaque(spaces: _Spaces, node: fx.Node, what: str) -> None:
    """An operation the analysis cannot see through: its inputs' channels stay as they are."""
    for source in _tensor_inputs(node):
        spaces.group(source).refusals.append(f"its channels reach {what}, which channel pruning cannot slice")
    spaces.new(node)
    spaces.group(node).refusals.append(f"its channels come from {what}")


def _visit(spaces: _Spaces, node: fx.Node, modules: dict[str, nn.Module]) -> None:
    inputs = _tensor_inputs(node)
    if node.op == "placeholder":
        spaces.new(node)
        spaces.group(node).refusals.append("its channels meet the model's input")
    elif node.op == "get_attr":
        spaces.new(node)
        spaces.group(node).refusals.append(f"its channels meet the tensor '{node.target}'")
    elif node.op == "output":
        for source in inputs:
            spaces.group(source).refusals.append("its channels are the model's output")
    elif node.op == "call_module":
        _visit_module(spaces, node, modules[node.target])
    elif node.op == "call_method" and node.target in SHAPE_QUERIES:
        spaces.new(node)
    elif (node.op, node.target) == ("call_function", getattr):
        spaces.new(node)
    elif node.target in MERGE_FUNCTIONS or (node.op == "call_method" and node.target in MERGE_METHODS):
        spaces.join(inputs)
        spaces.same(node, inputs[0])
    elif inputs and (node.target in PASS_FUNCTIONS or (node.op == "call_method" and node.target in PASS_METHODS)):
        spaces.same(node, inputs[0])
    else:
        _opaque(spaces, node, f"'{node.name}' ({getattr(node.target, '__name__', node.target)})")


def _check_widths(group: ChannelGroup, modules: dict[str, nn.Module]) -> None:
    """Refuse a group whose layers disagree on its width (a linear fed by a flattened
    feature map counts channels times pixels)."""
    widths = {modules[name].weight.shape[0] for name in group.producers}
    widths |= {modules[name].weight.shape[1] for name in group.consumers}
    if len(widths) > 1:
        group.refusals.append(f"its layers disagree on the channel count ({sorted(widths)}; flattened feature map?)")


def _analyse(model: nn.Module, graph: fx.Graph) -> _Spaces:
    modules = dict(model.named_modules())
    spaces = _Spaces()
    for node in graph.nodes:
        _visit(spaces, node, modules)
    order = {node.target: index for index, node in enumerate(graph.nodes) if node.op == "call_module"}
    for group in spaces.groups.values():
        for name in ("producers", "followers", "consumers"):
            setattr(group, name, sorted(set(getattr(group, name)), key=order.__getitem__))
        group.refusals = list(dict.fromkeys(group.refusals))
        if group.producers:
            _check_widths(group, modules)
    return spaces


def channel_groups(model: nn.Module, graph: fx.Graph | None = None) -> list[ChannelGroup]:
    """The channel groups of ``model`` that have producers, in the order of their first producer."""
    graph = graph if graph is not None else trace(model)
    groups = [g for g in _analyse(model, graph).groups.values() if g.producers]
    order = {node.target: index for index, node in enumerate(graph.nodes) if node.op == "call_module"}
    return sorted(groups, key=lambda g: order[g.producers[0]])


def node_groups(model: nn.Module, graph: fx.Graph) -> dict[fx.Node, ChannelGroup]:
    """The channel group of every tensor node of ``graph`` (for op enumeration)."""
    spaces = _analyse(model, graph)
    return {node: spaces.group(node) for node in spaces.parent}
