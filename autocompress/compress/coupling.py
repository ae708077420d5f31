"""Channel groups of a traced model: which layers' channels must be pruned together, and where
each group's channels lie in every tensor.

Every tensor node of a model's torch.fx graph (traced in inference mode) gets a ``Layout``:
its channel dim as a sequence of parts, each part the channels of one *space*. A dense conv
or linear layer starts a new space (it *produces* it) and *consumes* its input's layout;
channel-wise operations (batch and layer norm, depthwise convs, pooling, activations,
dropout, modules with a ``prune_channels`` method) keep their input's layout, and the norms
and depthwise convs are *followers* that are sliced with it. An element-wise add or
multiply of two tensors joins their spaces part by part, since their channels meet index by
index (residual adds; squeeze-excite's ``scale * x`` makes the gate's last conv a producer
of the block's space); a multiply or add with a parameter indexed by channel (a layer
scale) makes the parameter a follower. A concat along the channel dim lays its inputs'
layouts side by side, and a flatten of a (C, H, W) map repeats each part's channels H*W
times, so a consumer of either is sliced part by part at each part's offset. A group is one
joined space: all its producers lose the same channels (the lowest L1 importance summed
over them), and every follower and consumer loses them wherever they lie.

A space that reaches the model's input or output, a grouped (not depthwise) conv, a split,
a reshape that is not a flatten (channel shuffle), a permute, or any operation this
analysis does not know cannot be pruned; its group records why. The layers on either side
of such an op keep their own groups.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import Enum

import torch
import torch.nn.functional as F
from torch import fx, nn

POOL_MODULES = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d,
                nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool1d,
                nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d, nn.LPPool2d)
PASS_MODULES = (*POOL_MODULES, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.SiLU, nn.GELU, nn.Sigmoid,
                nn.Tanh, nn.LeakyReLU, nn.ELU, nn.Mish, nn.Hardtanh, nn.Identity, nn.Dropout, nn.Dropout1d,
                nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)
PASS_FUNCTIONS = {F.relu, torch.relu, torch.relu_, F.relu_, F.relu6, F.hardswish, F.hardsigmoid, F.silu, F.gelu,
                  F.mish, F.leaky_relu, F.elu, F.hardtanh, torch.sigmoid, F.sigmoid, torch.tanh, F.tanh, F.dropout,
                  F.dropout2d, F.max_pool1d, F.max_pool2d, F.max_pool3d, F.avg_pool1d, F.avg_pool2d, F.avg_pool3d,
                  F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.adaptive_avg_pool3d, F.adaptive_max_pool1d,
                  F.adaptive_max_pool2d, F.adaptive_max_pool3d, torch.clone}
PASS_METHODS = {"relu", "relu_", "sigmoid", "sigmoid_", "tanh", "tanh_", "contiguous", "clone"}
BINARY_FUNCTIONS = {operator.add, operator.iadd, operator.sub, operator.isub, operator.mul, operator.imul,
                    operator.truediv, operator.itruediv, torch.add, torch.sub, torch.mul, torch.div}
BINARY_METHODS = {"add", "add_", "sub", "sub_", "mul", "mul_", "div", "div_"}
REDUCE_METHODS = {"mean", "sum", "amax", "amin"}
REDUCE_FUNCTIONS = {torch.mean, torch.sum, torch.amax, torch.amin}
FLATTEN_METHODS = {"flatten", "view", "reshape"}
FLATTEN_FUNCTIONS = {torch.flatten, torch.reshape}
SHAPE_QUERIES = {"size", "dim"}
"""Method calls that read a tensor's shape and return no tensor."""
CHANNELS_LAST = (0, 2, 3, 1)
CHANNELS_FIRST = (0, 3, 1, 2)


class ChannelTracer(fx.Tracer):
    """Keeps convs and linears (their quantized subclasses too) and modules that can prune
    their own channels as single graph nodes."""

    def is_leaf_module(self, module: nn.Module, qualname: str) -> bool:
        return (isinstance(module, (nn.Conv2d, nn.Linear)) or hasattr(module, "prune_channels")
                or super().is_leaf_module(module, qualname))


def trace(model: nn.Module) -> fx.Graph:
    """The graph of ``model`` as it runs in inference (dropout and stochastic depth off)."""
    was_training = model.training
    model.eval()
    try:
        return ChannelTracer().trace(model)
    finally:
        model.train(was_training)


def is_depthwise(module: nn.Module) -> bool:
    return (isinstance(module, nn.Conv2d) and module.groups > 1
            and module.groups == module.in_channels == module.out_channels)


def is_dense(module: nn.Module) -> bool:
    """A conv or linear layer that mixes all its input channels (a group's producer)."""
    return isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1)


def keep_count(channels: int, ratio: float) -> int:
    """Channels left after pruning ``ratio`` of ``channels``."""
    return max(1, channels - int(round(ratio * channels)))


@dataclass(eq=False)
class ChannelGroup:
    """Layers whose output channels are one space: pruned together, or not at all."""

    channels: int = 0
    """The space's width (0 where neither a layer nor the graph's shapes tell it)."""
    blocks: int = 1
    """Equal blocks of channels that keep equal counts (the groups of a grouped conv)."""
    producers: list[str] = field(default_factory=list)
    followers: list[str] = field(default_factory=list)
    """Modules and parameters (their paths) sliced along the space wherever they meet it."""
    consumers: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    """Why the group cannot be pruned (empty if it can)."""

    @property
    def prunable(self) -> bool:
        return bool(self.producers) and not self.refusals

    def keep_count(self, ratio: float) -> int:
        """Channels left after pruning ``ratio`` of the group's (of each block's) channels."""
        return self.blocks * keep_count(self.channels // self.blocks, ratio) if ratio else self.channels


@dataclass(frozen=True)
class Part:
    """``channels`` channels of ``group``, each ``repeat`` consecutive features of the tensor."""

    group: ChannelGroup
    channels: int
    repeat: int = 1


@dataclass(frozen=True)
class Layout:
    """The channel dim of one tensor node: its parts, in order."""

    parts: tuple[Part, ...]
    dim: int = 1
    """The tensor dim the channels lie along: 1, or -1 for a channels-last tensor."""

    @property
    def full(self) -> int:
        return sum(part.channels * part.repeat for part in self.parts)

    def width(self, ratio_of: Callable[[ChannelGroup], float]) -> int:
        """The width after pruning each prunable group at ``ratio_of(group)``."""
        return sum(part.group.keep_count(ratio_of(part.group) if part.group.prunable else 0.0) * part.repeat
                   for part in self.parts)

    def widths(self, ratios: Sequence[float], may_prune: Callable[[ChannelGroup], bool]) -> set[int]:
        """Every width pruning the groups at ``ratios`` can give (a group that is refused or
        that ``may_prune`` rejects keeps its width)."""
        by_group: dict[ChannelGroup, list[Part]] = {}
        for part in self.parts:
            by_group.setdefault(part.group, []).append(part)
        found = {0}
        for group, parts in by_group.items():
            choices = ratios if group.prunable and may_prune(group) else (0.0,)
            options = {group.keep_count(ratio) * sum(p.repeat for p in parts) for ratio in choices}
            found = {total + option for total in found for option in options}
        return found

    def indices(self, kept: Callable[[ChannelGroup], torch.Tensor | None]) -> torch.Tensor:
        """The features this layout keeps when each group keeps ``kept(group)`` of its
        channels (None: all), at each part's offset."""
        pieces, offset = [], 0
        for part in self.parts:
            channels = kept(part.group)
            channels = torch.arange(part.channels) if channels is None else channels
            features = (channels[:, None] * part.repeat + torch.arange(part.repeat)).flatten()
            pieces.append(features + offset)
            offset += part.channels * part.repeat
        return torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.long)


class Axis(Enum):
    """Where a tensor's channel dim is."""

    FIRST = "channels at dim 1, spatial dims after (N, C, H, W)"
    FEATURES = "a 2-d tensor (N, C)"
    LAST = "channels last (N, H, W, C)"


class Role(Enum):
    """How a module or parameter meets the layouts it reads."""

    LAYER = "a dense conv or linear: consumes its input's layout, produces a new space"
    FOLLOWER = "channel-wise: sliced along its input's layout"
    PARAMETER = "a parameter multiplied or added along the channel dim: sliced along it"


@dataclass(frozen=True)
class Use:
    """One module or parameter (``path``) and the layouts that slice it."""

    path: str
    role: Role
    layout: Layout
    """The layout its input channels (a follower's, a parameter's: its channels) lie in."""
    output: Layout | None = None
    """A layer's output (one part, its own space)."""
    dim: int = 0
    """A parameter's dim along the channels."""


@dataclass(frozen=True)
class ChannelGraph:
    """The channel analysis of one traced model."""

    groups: list[ChannelGroup]
    """Groups that have producers, in the order of their first producer."""
    layouts: dict[fx.Node, Layout]
    uses: list[Use]


class _Space:
    """A union-find node standing for one channel space while the graph is walked."""

    def __init__(self, channels: int, refusal: str | None = None) -> None:
        self.parent = self
        self.group = ChannelGroup(channels)
        if refusal:
            self.group.refusals.append(refusal)

    def root(self) -> _Space:
        space = self
        while space.parent is not space:
            space.parent = space.parent.parent
            space = space.parent
        return space


@dataclass(frozen=True)
class _Part:
    space: _Space
    repeat: int = 1


@dataclass(frozen=True)
class _Layout:
    parts: tuple[_Part, ...]
    axis: Axis

    def groups(self) -> Iterator[ChannelGroup]:
        yield from dict.fromkeys(part.space.root().group for part in self.parts)

    def full(self) -> int | None:
        """The width, None while a part's width is unknown."""
        widths = [part.space.root().group.channels * part.repeat for part in self.parts]
        return None if 0 in widths else sum(widths)

    def shape(self) -> tuple[tuple[int, int], ...]:
        return tuple((part.space.root().group.channels, part.repeat) for part in self.parts)


@dataclass(frozen=True)
class _Use:
    path: str
    role: Role
    layout: _Layout
    output: _Layout | None = None
    dim: int = 0


def _name(node: fx.Node) -> str:
    return getattr(node.target, "__name__", str(node.target))


def _arg(node: fx.Node, index: int, key: str, default: object = None) -> object:
    return node.args[index] if len(node.args) > index else node.kwargs.get(key, default)


def _is_stochastic_depth_off(node: fx.Node) -> bool:
    """torchvision's ``stochastic_depth`` (wrapped so fx keeps it as one call) in inference:
    the identity."""
    return (node.op == "call_function" and _name(node) == "stochastic_depth"
            and getattr(node.target, "__module__", "").startswith("torchvision")
            and _arg(node, 3, "training", True) is False)


class _Walk:
    """Walks the graph in order, giving each tensor node its layout."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.modules = dict(model.named_modules())
        self.layouts: dict[fx.Node, _Layout] = {}
        self.uses: list[_Use] = []

    # -- spaces -----------------------------------------------------------------------
    def _known_channels(self, node: fx.Node, axis: Axis) -> int:
        meta = node.meta.get("tensor_meta")
        shape = getattr(meta, "shape", None)
        if shape is None or len(shape) < 2:
            return 0
        return int(shape[-1] if axis is Axis.LAST else shape[1])

    def _new(self, node: fx.Node, axis: Axis, channels: int = 0, refusal: str | None = None) -> None:
        channels = channels or self._known_channels(node, axis)
        self.layouts[node] = _Layout((_Part(_Space(channels, refusal)),), axis)

    def _refuse(self, layout: _Layout, reason: str) -> None:
        for group in layout.groups():
            group.refusals.append(reason)

    def _opaque(self, node: fx.Node, what: str, axis: Axis = Axis.FIRST, channels: int = 0) -> None:
        """An operation the analysis cannot see through: its inputs' channels stay as they are."""
        for source in self._tensor_inputs(node):
            self._refuse(self.layouts[source], f"its channels reach {what}, which channel pruning cannot slice")
        self._new(node, axis, channels, f"its channels come from {what}")

    def _join_spaces(self, first: _Space, second: _Space) -> None:
        kept, gone = first.root(), second.root()
        if kept is gone:
            return
        gone.parent = kept
        a, b = kept.group, gone.group
        if a.channels and b.channels and a.channels != b.channels:
            a.refusals.append(f"its layers disagree on the channel count ({sorted({a.channels, b.channels})})")
        a.channels = a.channels or b.channels
        self._set_blocks(a, b.blocks)
        for name in ("producers", "followers", "consumers", "refusals"):
            getattr(a, name).extend(getattr(b, name))

    def _set_blocks(self, group: ChannelGroup, blocks: int) -> None:
        """The group's channels must keep equal counts in ``blocks`` blocks."""
        if blocks != 1 and group.blocks not in (1, blocks):
            group.refusals.append(f"its channels meet grouped convs of {group.blocks} and {blocks} groups")
        group.blocks = max(group.blocks, blocks)

    def _set_width(self, layout: _Layout, width: int) -> bool:
        """Tell ``layout`` its width (read from a layer reading it): fills the one part whose
        width is unknown. False if the width cannot be matched."""
        unknown = [part for part in layout.parts if not part.space.root().group.channels]
        known = sum(part.space.root().group.channels * part.repeat for part in layout.parts)
        if len(unknown) == 1 and (width - known) % unknown[0].repeat == 0 and width > known:
            unknown[0].space.root().group.channels = (width - known) // unknown[0].repeat
        return layout.full() == width

    # -- node kinds ---------------------------------------------------------------------
    def _tensor_inputs(self, node: fx.Node) -> list[fx.Node]:
        return [n for n in node.all_input_nodes if n in self.layouts]

    def _read(self, path: str, role: Role, source: fx.Node, width: int | None,
              output: _Layout | None = None) -> None:
        """``path`` reads ``source``'s channels, ``width`` of them (None: a module that
        slices itself, ``prune_channels``)."""
        layout = self.layouts[source]
        if width is not None and not self._set_width(layout, width):
            self._refuse(layout, f"'{path}' reads {width} channels where the graph gives {layout.full()}")
        for group in layout.groups():
            (group.consumers if role is Role.LAYER else group.followers).append(path)
        self.uses.append(_Use(path, role, layout, output))

    def _module(self, node: fx.Node, module: nn.Module) -> None:
        path, inputs = node.target, self._tensor_inputs(node)
        if not inputs:
            self._opaque(node, f"{type(module).__name__} '{path}'")
            return
        source = inputs[0]
        axis = self.layouts[source].axis
        if isinstance(module, nn.Linear):
            if axis is Axis.FIRST and not self._set_width(self.layouts[source], module.in_features):
                self._opaque(node, f"linear '{path}' on the last dim of a channels-first tensor")
                return
            self._layer(node, path, source, module.in_features, module.out_features,
                        Axis.LAST if axis is Axis.LAST else Axis.FEATURES)
        elif isinstance(module, nn.Conv2d) and is_depthwise(module):
            self._follow(node, path, source, module.in_channels)
        elif isinstance(module, nn.Conv2d) and (module.groups == 1 or len(self.layouts[source].parts) == 1):
            self._layer(node, path, source, module.in_channels, module.out_channels, Axis.FIRST, module.groups)
        elif isinstance(module, nn.Conv2d):
            self._opaque(node, f"grouped conv '{path}' on a concat", Axis.FIRST, module.out_channels)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            self._follow(node, path, source, module.num_features)
        elif isinstance(module, nn.LayerNorm) and len(module.normalized_shape) == 1 and axis is not Axis.FIRST:
            self._follow(node, path, source, module.normalized_shape[0])
        elif hasattr(module, "prune_channels") and len(inputs) == 1:
            self._follow(node, path, source, None)
        elif isinstance(module, PASS_MODULES):
            self.layouts[node] = self.layouts[source]
        elif isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
            self._flatten(node, source)
        else:
            self._opaque(node, f"{type(module).__name__} '{path}'")

    def _layer(self, node: fx.Node, path: str, source: fx.Node, width_in: int, width_out: int, axis: Axis,
               blocks: int = 1) -> None:
        """A dense layer, or a grouped conv (``blocks`` groups: its input's and output's
        channels keep equal counts per group)."""
        space = _Space(width_out)
        space.group.producers.append(path)
        space.group.blocks = blocks
        output = _Layout((_Part(space),), axis)
        self._read(path, Role.LAYER, source, width_in, output)
        if blocks > 1:
            for group in self.layouts[source].groups():
                self._set_blocks(group, blocks)
        self.layouts[node] = output

    def _follow(self, node: fx.Node, path: str, source: fx.Node, width: int | None) -> None:
        self._read(path, Role.FOLLOWER, source, width)
        self.layouts[node] = self.layouts[source]

    def _consumer_width(self, node: fx.Node) -> int | None:
        """The input width of the first layer that reads ``node`` through channel-wise ops."""
        for user in node.users:
            module = self.modules.get(user.target) if user.op == "call_module" else None
            if isinstance(module, nn.Linear):
                return module.in_features
            if isinstance(module, nn.BatchNorm1d):
                return module.num_features
            if isinstance(module, PASS_MODULES) or user.target in PASS_FUNCTIONS or (
                    user.op == "call_method" and user.target in PASS_METHODS):
                found = self._consumer_width(user)
                if found is not None:
                    return found
        return None

    def _flatten(self, node: fx.Node, source: fx.Node) -> None:
        """A flatten from dim 1: each channel of a channels-first map becomes H*W features."""
        layout = self.layouts[source]
        if layout.axis is Axis.FEATURES:
            self.layouts[node] = layout
            return
        if layout.axis is Axis.LAST:
            self._opaque(node, f"a flatten of a channels-last tensor ('{node.name}')", Axis.FEATURES)
            return
        channels = layout.full()
        meta = getattr(source.meta.get("tensor_meta"), "shape", None)
        features = math.prod(meta[1:]) if meta is not None else self._consumer_width(node)
        if channels is None or features is None or features % channels:
            self._opaque(node, f"a flatten whose features are unknown ('{node.name}')", Axis.FEATURES,
                         features or 0)
            return
        repeat = features // channels
        self.layouts[node] = _Layout(tuple(_Part(part.space, part.repeat * repeat) for part in layout.parts),
                                     Axis.FEATURES)

    def _is_flatten(self, node: fx.Node) -> bool:
        """``torch.flatten(x, 1)``, ``x.flatten(1)``, ``x.view(x.size(0), -1)``, ``x.reshape(n, -1)``."""
        if node.target in ("flatten", torch.flatten):
            return _arg(node, 1, "start_dim", 0) == 1 and _arg(node, 2, "end_dim", -1) == -1
        shape = list(node.args[1:]) if len(node.args) > 2 else node.args[1] if len(node.args) == 2 else None
        return isinstance(shape, (list, tuple)) and len(shape) == 2 and shape[1] == -1 and (
            isinstance(shape[0], int) or (isinstance(shape[0], fx.Node) and shape[0] not in self.layouts))

    def _binary(self, node: fx.Node) -> None:
        operands = [_arg(node, 0, "input"), _arg(node, 1, "other")]
        tensors = [o for o in operands if isinstance(o, fx.Node) and o in self.layouts]
        if len(tensors) == 1:
            self.layouts[node] = self.layouts[tensors[0]]
            return
        if len(tensors) == 0:
            self._new(node, Axis.FIRST)
            return
        first, second = (self.layouts[t] for t in tensors)
        params = [t for t in tensors if t.op == "get_attr"]
        if len(params) == 1:
            tensor = next(t for t in tensors if t is not params[0])
            self._parameter(node, params[0], tensor)
        elif first.shape() == second.shape() or (len(first.parts) == len(second.parts) == 1 and 0 in (
                first.full() or 0, second.full() or 0)):
            for a, b in zip(first.parts, second.parts, strict=True):
                self._join_spaces(a.space, b.space)
            self.layouts[node] = first
        elif second.full() == 1 or first.full() == 1:
            self.layouts[node] = first if second.full() == 1 else second
        else:
            self._opaque(node, f"'{node.name}' ({_name(node)} of tensors whose channels differ)")

    def _parameter(self, node: fx.Node, param: fx.Node, tensor: fx.Node) -> None:
        """A tensor times or plus a parameter: a follower if indexed by the tensor's channels."""
        value = self.model.get_parameter(param.target) if _has_parameter(self.model, param.target) else None
        layout = self.layouts[tensor]
        self.layouts[node] = layout
        if value is None:
            self._refuse(layout, f"its channels meet the tensor '{param.target}', which is not a parameter")
            return
        trailing = 2 if layout.axis is Axis.FIRST else 0
        shape = tuple(value.shape)
        if math.prod(shape) == 1:
            return
        dim = len(shape) - 1 - trailing
        if dim < 0 or any(size != 1 for index, size in enumerate(shape) if index != dim) or shape[dim] != (
                layout.full() or shape[dim]):
            self._refuse(layout, f"its channels meet the parameter '{param.target}' of shape {list(shape)}")
            return
        self._set_width(layout, shape[dim])
        for group in layout.groups():
            group.followers.append(param.target)
        self.uses.append(_Use(param.target, Role.PARAMETER, layout, dim=dim))

    def _concat(self, node: fx.Node) -> None:
        sources = _arg(node, 0, "tensors")
        dim = _arg(node, 1, "dim", 0)
        if not isinstance(sources, (list, tuple)) or not all(s in self.layouts for s in sources):
            self._opaque(node, f"'{node.name}' (cat)")
            return
        layouts = [self.layouts[s] for s in sources]
        axis = layouts[0].axis
        channel_dim = {Axis.FIRST: (1,), Axis.FEATURES: (1, -1), Axis.LAST: (3, -1)}[axis]
        if any(layout.axis is not axis for layout in layouts):
            self._opaque(node, f"'{node.name}' (cat of tensors with channels on different dims)")
        elif dim in channel_dim:
            self.layouts[node] = _Layout(tuple(part for layout in layouts for part in layout.parts), axis)
        elif all(layout.shape() == layouts[0].shape() for layout in layouts):
            for layout in layouts[1:]:  # side by side along a non-channel dim: channels meet index by index
                for a, b in zip(layouts[0].parts, layout.parts, strict=True):
                    self._join_spaces(a.space, b.space)
            self.layouts[node] = layouts[0]
        else:
            self._opaque(node, f"'{node.name}' (cat of tensors whose channels differ)")

    def _reduce(self, node: fx.Node, source: fx.Node) -> None:
        """A mean/sum/max over spatial dims keeps the channels."""
        layout = self.layouts[source]
        dims = _arg(node, 1, "dim")
        dims = tuple(dims) if isinstance(dims, (list, tuple)) else (dims,)
        spatial = {Axis.FIRST: {2, 3, -1, -2}, Axis.LAST: {1, 2, -2, -3}, Axis.FEATURES: set()}[layout.axis]
        if dims == (None,) or not set(dims) <= spatial:
            self._opaque(node, f"'{node.name}' ({_name(node)} over dims {list(dims)})")
            return
        keepdim = _arg(node, 2, "keepdim", False)
        self.layouts[node] = layout if keepdim or len(dims) < 2 else _Layout(layout.parts, Axis.FEATURES)

    def _permute(self, node: fx.Node, source: fx.Node) -> None:
        dims = tuple(node.args[1:]) if len(node.args) > 2 else tuple(_arg(node, 1, "dims", ()))
        layout = self.layouts[source]
        moves = {(Axis.FIRST, CHANNELS_LAST): Axis.LAST, (Axis.LAST, CHANNELS_FIRST): Axis.FIRST}
        axis = moves.get((layout.axis, dims))
        what = f"a permute ('{node.name}')"
        self._opaque(node, what, axis or Axis.FIRST, (layout.full() or 0) if axis else 0)

    def visit(self, node: fx.Node) -> None:
        inputs = self._tensor_inputs(node)
        target = node.target
        method = node.op == "call_method"
        if node.op == "placeholder":
            self._new(node, Axis.FIRST, refusal="its channels meet the model's input")
        elif node.op == "get_attr":
            self._new(node, Axis.FIRST)
        elif node.op == "output":
            for source in inputs:
                self._refuse(self.layouts[source], "its channels are the model's output")
        elif node.op == "call_module":
            self._module(node, self.modules[target])
        elif not inputs or (method and target in SHAPE_QUERIES) or target is getattr:
            return  # no tensor: a shape, a size, an int
        elif target in BINARY_FUNCTIONS or (method and target in BINARY_METHODS):
            self._binary(node)
        elif target is torch.cat or target is torch.concat:
            self._concat(node)
        elif (target in FLATTEN_FUNCTIONS or (method and target in FLATTEN_METHODS)) and self._is_flatten(node):
            self._flatten(node, inputs[0])
        elif target in REDUCE_FUNCTIONS or (method and target in REDUCE_METHODS):
            self._reduce(node, inputs[0])
        elif target is torch.permute or (method and target == "permute"):
            self._permute(node, inputs[0])
        elif target in PASS_FUNCTIONS or (method and target in PASS_METHODS) or _is_stochastic_depth_off(node):
            self.layouts[node] = self.layouts[inputs[0]]
        else:
            self._opaque(node, f"'{node.name}' ({_name(node)})")


def _has_parameter(model: nn.Module, path: str) -> bool:
    try:
        model.get_parameter(path)
    except AttributeError:
        return False
    return True


def _refuse_shared(uses: list[_Use]) -> None:
    """A module called, or a parameter used, more than once would be sliced for each call:
    refuse the groups it meets."""
    counts = Counter(use.path for use in uses)
    for use in uses:
        if counts[use.path] > 1:
            for group in use.layout.groups():
                group.refusals.append(f"'{use.path}' is used more than once")


def _public(layout: _Layout) -> Layout:
    return Layout(tuple(Part(p.space.root().group, p.space.root().group.channels, p.repeat) for p in layout.parts),
                  -1 if layout.axis is Axis.LAST else 1)


def analyse(model: nn.Module, graph: fx.Graph | None = None) -> ChannelGraph:
    """The channel groups, every tensor node's layout and the modules to slice of ``model``
    (traced here unless ``graph`` is given; a graph with shapes (ShapeProp) gives widths the
    layers do not)."""
    graph = graph if graph is not None else trace(model)
    walk = _Walk(model)
    for node in graph.nodes:
        walk.visit(node)
    _refuse_shared(walk.uses)
    order = {node.target: index for index, node in enumerate(graph.nodes)
             if node.op in ("call_module", "get_attr")}
    layouts = {node: _public(layout) for node, layout in walk.layouts.items()}
    groups: dict[ChannelGroup, None] = {}
    for layout in walk.layouts.values():
        for group in layout.groups():
            groups[group] = None
    for group in groups:
        for name in ("producers", "followers", "consumers"):
            setattr(group, name, sorted(set(getattr(group, name)), key=order.__getitem__))
        group.refusals = list(dict.fromkeys(group.refusals))
    uses = [Use(u.path, u.role, _public(u.layout), _public(u.output) if u.output else None, u.dim) for u in walk.uses]
    produced = sorted((g for g in groups if g.producers), key=lambda g: order[g.producers[0]])
    return ChannelGraph(produced, layouts, uses)


def channel_groups(model: nn.Module, graph: fx.Graph | None = None) -> list[ChannelGroup]:
    """The channel groups of ``model`` that have producers, in the order of their first producer."""
    return analyse(model, graph).groups


def node_layouts(model: nn.Module, graph: fx.Graph) -> dict[fx.Node, Layout]:
    """The layout of every tensor node of ``graph`` (for op enumeration)."""
    return analyse(model, graph).layouts
