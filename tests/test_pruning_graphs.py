"""Channel pruning through the graph patterns of torchvision's CNNs: concat, dense blocks,
flatten into a linear, squeeze-excite, channel shuffle, channels-last linears, layer scales.

Each hand-written model has half the channels of every prunable group dead (their
producers' filters and every norm on the way zero), so pruning 50% removes exactly those:
the output must not change, which proves each module was sliced at the right offsets."""

from __future__ import annotations

import importlib.util
import random

import pytest
import torch
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from autocompress.compress.coupling import ChannelGroup, analyse, channel_groups, node_layouts, trace
from autocompress.compress.prune import prune_channels, prune_groups
from autocompress.models import torchvision_zoo


@torch.no_grad()
def _kill(module: nn.Module, dead: list[int]) -> None:
    """Zero the outputs ``dead`` of a conv, linear or norm (a norm's output there becomes 0)."""
    module.weight[dead] = 0.0
    if module.bias is not None:
        module.bias[dead] = 0.0


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _prunable(model: nn.Module) -> dict[str, ChannelGroup]:
    return {g.producers[0]: g for g in channel_groups(model) if g.prunable}


@torch.no_grad()
def _prune_half_and_compare(model: nn.Module, x: torch.Tensor) -> dict[str, ChannelGroup]:
    """Prune every prunable group 50%; the output must be unchanged and the model smaller."""
    model.eval()
    reference, params = model(x), _params(model)
    groups = _prunable(model)
    prune_groups(model, {group: 0.5 for group in groups.values()})
    out = model(x)
    assert out.shape == reference.shape
    assert _params(model) < params
    assert torch.allclose(out, reference, atol=1e-5), (out - reference).abs().max()
    return groups


class _Concat(nn.Module):
    """Two branches concatenated along channels, read by one conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.left, self.right = nn.Conv2d(8, 6, 1), nn.Conv2d(8, 4, 3, padding=1)
        self.mix = nn.Conv2d(10, 6, 1)
        self.fc = nn.Linear(6, 3)
        _kill(self.stem, [0, 2, 4, 6])
        _kill(self.left, [0, 2, 4])
        _kill(self.right, [1, 3])
        _kill(self.mix, [3, 4, 5])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.cat([torch.relu(self.left(x)), torch.relu(self.right(x))], dim=1)
        return self.fc(torch.relu(self.mix(x)).mean((2, 3)))


def test_concat_parts_are_pruned_each_at_its_offset():
    model = _Concat()
    groups = _prune_half_and_compare(model, torch.randn(2, 3, 8, 8))
    assert set(groups) == {"stem", "left", "right", "mix"}
    assert model.mix.in_channels == 5 and (model.left.out_channels, model.right.out_channels) == (3, 2)


class _DenseLayer(nn.Module):
    def __init__(self, channels: int, growth: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm2d(channels)
        self.conv = nn.Conv2d(channels, growth, 3, padding=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.conv(torch.relu(self.norm(torch.cat(features, 1))))


class _Dense(nn.Module):
    """A DenseNet block: every layer reads (BN -> ReLU -> conv) the concat of all before it."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.layers = nn.ModuleList([_DenseLayer(8, 4), _DenseLayer(12, 4)])
        self.norm = nn.BatchNorm2d(16)
        self.transition = nn.Conv2d(16, 6, 1)
        self.fc = nn.Linear(6, 3)
        stem_dead, first_dead, second_dead = [0, 2, 4, 6], [0, 2], [1, 3]
        _kill(self.stem, stem_dead)
        _kill(self.layers[0].conv, first_dead)
        _kill(self.layers[1].conv, second_dead)
        _kill(self.transition, [0, 1, 2])
        _kill(self.layers[0].norm, stem_dead)  # the concat's offsets: stem at 0, growth 1 at 8, growth 2 at 12
        _kill(self.layers[1].norm, stem_dead + [8 + c for c in first_dead])
        _kill(self.norm, stem_dead + [8 + c for c in first_dead] + [12 + c for c in second_dead])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [self.stem(x)]
        for layer in self.layers:
            features.append(layer(features))
        x = self.transition(torch.relu(self.norm(torch.cat(features, 1))))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(nn.functional.avg_pool2d(x, 2), 1), 1))


def test_a_dense_block_prunes_every_growth_at_its_offsets_in_each_concat():
    model = _Dense()
    for norm in (model.layers[0].norm, model.layers[1].norm, model.norm):  # non-trivial statistics
        norm.running_mean.uniform_(-0.5, 0.5)
        norm.running_var.uniform_(0.5, 2.0)
    groups = _prune_half_and_compare(model, torch.randn(2, 3, 8, 8))
    assert set(groups) == {"stem", "layers.0.conv", "layers.1.conv", "transition"}
    assert groups["stem"].followers == ["layers.0.norm", "layers.1.norm", "norm"]
    assert (model.layers[1].norm.num_features, model.norm.num_features, model.transition.in_channels) == (6, 8, 8)


class _Flatten(nn.Module):
    """Conv maps flattened into a linear: after an adaptive pool to 2x2, or after a max pool
    of a fixed 8x8 input through ``view(n, -1)``."""

    def __init__(self, adaptive: bool) -> None:
        super().__init__()
        self.adaptive = adaptive
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.conv = nn.Conv2d(4, 6, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(2) if adaptive else nn.MaxPool2d(2)
        self.fc = nn.Linear(6 * 4 if adaptive else 6 * 4 * 4, 8)
        self.head = nn.Linear(8, 3)
        _kill(self.stem, [1, 3])
        _kill(self.conv, [0, 2, 4])
        _kill(self.fc, [0, 1, 2, 3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(torch.relu(self.conv(nn.functional.max_pool2d(torch.relu(self.stem(x)), 2))))
        x = torch.flatten(x, 1) if self.adaptive else x.view(x.size(0), -1)
        return self.head(torch.relu(self.fc(nn.functional.dropout(x, 0.5, self.training))))


@pytest.mark.parametrize("adaptive", [True, False])
def test_a_flatten_into_a_linear_prunes_its_features_in_blocks_of_the_map(adaptive):
    model = _Flatten(adaptive)
    groups = _prune_half_and_compare(model, torch.randn(2, 3, 16, 16))
    assert set(groups) == {"stem", "conv", "fc"}
    assert model.fc.in_features == 3 * (4 if adaptive else 16)


class _SqueezeExcitation(nn.Module):
    """As ``torchvision.ops.misc.SqueezeExcitation`` writes it."""

    def __init__(self, channels: int, squeeze: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1, self.fc2 = nn.Conv2d(channels, squeeze, 1), nn.Conv2d(squeeze, channels, 1)
        self.activation, self.scale_activation = nn.ReLU(), nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.scale_activation(self.fc2(self.activation(self.fc1(self.avgpool(x)))))
        return scale * x


class _SE(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.expand, self.expand_norm = nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8)
        self.dw, self.dw_norm = nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.BatchNorm2d(8)
        self.se = _SqueezeExcitation(8, 4)
        self.project = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 3)
        dead = [1, 3, 5, 7]
        for module in (self.expand, self.expand_norm, self.dw, self.dw_norm, self.se.fc2):
            _kill(module, dead)
        _kill(self.se.fc1, [0, 1])
        _kill(self.project, [0, 1, 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = nn.functional.hardswish(self.dw_norm(self.dw(nn.functional.hardswish(self.expand_norm(self.expand(x))))))
        return self.fc(self.project(self.se(x)).mean((2, 3)))


def test_squeeze_excite_gate_is_a_producer_of_the_block_and_its_bottleneck_its_own_group():
    model = _SE()
    groups = _prune_half_and_compare(model, torch.randn(2, 3, 8, 8))
    assert set(groups) == {"expand", "se.fc1", "project"}
    assert groups["expand"].producers == ["expand", "se.fc2"]
    assert groups["expand"].consumers == ["se.fc1", "project"]
    assert model.se.fc2.out_channels == model.dw.groups == 4 and model.se.fc1.out_channels == 2


def _channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    batch, channels, height, width = x.size()
    x = x.view(batch, groups, channels // groups, height, width)
    return x.transpose(1, 2).contiguous().view(batch, -1, height, width)


class _Shuffle(nn.Module):
    """A ShuffleNetV2 unit: split, one branch 1x1 -> depthwise -> 1x1, concat, shuffle."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.reduce, self.reduce_norm = nn.Conv2d(4, 6, 1), nn.BatchNorm2d(6)
        self.dw, self.dw_norm = nn.Conv2d(6, 6, 3, padding=1, groups=6), nn.BatchNorm2d(6)
        self.restore = nn.Conv2d(6, 4, 1)
        self.fc = nn.Linear(8, 3)
        for module in (self.reduce, self.reduce_norm, self.dw, self.dw_norm):
            _kill(module, [0, 2, 4])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, right = self.stem(x).chunk(2, dim=1)
        right = self.restore(self.dw_norm(self.dw(torch.relu(self.reduce_norm(self.reduce(right))))))
        return self.fc(_channel_shuffle(torch.cat((left, right), dim=1), 2).mean((2, 3)))


def test_split_and_shuffle_are_refused_with_the_reason_and_the_branch_inside_stays_prunable():
    model = _Shuffle()
    groups = {g.producers[0]: g for g in channel_groups(model)}
    assert "reach 'chunk' (chunk)" in groups["stem"].refusals[0]
    assert "reach 'view' (view)" in groups["restore"].refusals[0]
    assert set(_prune_half_and_compare(model, torch.randn(2, 3, 8, 8))) == {"reduce"}
    assert model.dw.groups == 3 and model.restore.in_channels == 3


class _ChannelsLast(nn.Module):
    """A ConvNeXt block (depthwise conv, channels-last LayerNorm and Linear pair, layer scale,
    residual add), then a conv scaled by a per-channel parameter."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 2, stride=2)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.norm = nn.LayerNorm(8)
        self.up, self.down = nn.Linear(8, 16), nn.Linear(16, 8)
        self.layer_scale = nn.Parameter(torch.rand(8, 1, 1))
        self.conv = nn.Conv2d(8, 6, 1)
        self.scale = nn.Parameter(torch.rand(6, 1, 1) + 0.5)
        self.fc = nn.Linear(6, 3)
        _kill(self.up, list(range(8)))
        _kill(self.conv, [0, 1, 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        y = self.down(nn.functional.gelu(self.up(self.norm(self.dw(x).permute(0, 2, 3, 1))))).permute(0, 3, 1, 2)
        x = x + self.layer_scale * y
        return self.fc((self.scale * self.conv(x)).mean((2, 3)))


def test_a_channels_last_linear_pair_and_a_layer_scale_are_pruned():
    model = _ChannelsLast()
    groups = {g.producers[0]: g for g in channel_groups(model)}
    assert "reach a permute" in groups["stem"].refusals[0]
    assert groups["conv"].followers == ["scale"]
    assert set(_prune_half_and_compare(model, torch.randn(2, 3, 8, 8))) == {"up", "conv"}
    assert model.up.out_features == model.down.in_features == 8 and model.scale.shape == (3, 1, 1)


class _Grouped(nn.Module):
    """A ResNeXt bottleneck: 1x1 -> grouped 3x3 -> 1x1; a grouped conv's input and output
    keep an equal count in each of its groups."""

    def __init__(self) -> None:
        super().__init__()
        self.reduce, self.reduce_norm = nn.Conv2d(3, 8, 1), nn.BatchNorm2d(8)
        self.grouped, self.grouped_norm = nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.BatchNorm2d(8)
        self.expand = nn.Conv2d(8, 6, 1)
        self.fc = nn.Linear(6, 3)
        for module in (self.reduce, self.reduce_norm):
            _kill(module, [0, 1, 4, 5])  # two of each group's four
        for module in (self.grouped, self.grouped_norm):
            _kill(module, [2, 3, 6, 7])
        _kill(self.expand, [0, 1, 2])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.grouped_norm(self.grouped(torch.relu(self.reduce_norm(self.reduce(x))))))
        return self.fc(self.expand(x).mean((2, 3)))


def test_a_grouped_conv_keeps_its_groups_and_an_equal_count_in_each():
    model = _Grouped()
    assert set(_prune_half_and_compare(model, torch.randn(2, 3, 8, 8))) == {"reduce", "grouped", "expand"}
    assert (model.grouped.in_channels, model.grouped.out_channels, model.grouped.groups) == (4, 4, 2)
    model = _Grouped()
    with torch.no_grad():
        model.grouped.weight[:4] += torch.tensor([10.0, 9.0, 8.0, 7.0])[:, None, None, None]
    weight = model.grouped.weight.clone()
    prune_channels(model, "grouped", 0.5)  # the first group's filters weigh most: still two go from each
    assert torch.equal(model.grouped.weight, weight[[0, 1, 4, 5]])


def _hand_written() -> list[tuple[nn.Module, tuple[int, ...]]]:
    return [(_Concat(), (3, 8, 8)), (_Dense(), (3, 8, 8)), (_Flatten(True), (3, 16, 16)),
            (_Flatten(False), (3, 16, 16)), (_SE(), (3, 8, 8)), (_Shuffle(), (3, 8, 8)),
            (_ChannelsLast(), (3, 8, 8)), (_Grouped(), (3, 8, 8))]


def _torchvision(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    if importlib.util.find_spec("torchvision") is None:
        pytest.skip("torchvision (an optional extra) is not installed")
    torch.manual_seed(0)
    return torchvision_zoo.build(name).eval(), (3, 32, 32)


def _shaped(model: nn.Module, image: tuple[int, ...]) -> fx.Graph:
    graph = trace(model)
    with torch.no_grad():
        ShapeProp(fx.GraphModule(model, graph)).propagate(torch.zeros(1, *image))
    return graph


@pytest.mark.parametrize("which", [*range(8), "squeezenet1_0", "shufflenet_v2_x0_5", "mobilenet_v3_small",
                                   "regnet_y_400mf"])
def test_layout_widths_are_the_channels_the_pruned_model_has_at_every_node(which):
    model, image = _hand_written()[which] if isinstance(which, int) else _torchvision(which)
    analysis = analyse(model, _shaped(model, image))
    layouts = {node.name: layout for node, layout in analysis.layouts.items()}
    rng = random.Random(0)
    ratios = {group: rng.choice([0.25, 0.5, 0.75]) for group in analysis.groups if group.prunable}
    assert ratios
    prune_groups(model, ratios)
    pruned = _shaped(model, image)
    checked = 0
    for node in pruned.nodes:
        shape = getattr(node.meta.get("tensor_meta"), "shape", None)
        if node.name in layouts and shape is not None and len(shape) > 1:
            layout = layouts[node.name]
            assert shape[layout.dim] == layout.width(lambda group: ratios.get(group, 0.0)), node.name
            checked += 1
    assert checked >= 8


def test_widths_enumerate_each_group_once_per_layout():
    layouts = node_layouts(_Dense(), _shaped(_Dense(), (3, 8, 8)))
    concat = next(layout for node, layout in layouts.items() if len(layout.parts) == 3)
    assert concat.full == 16
    assert concat.widths((0.0, 0.5), lambda group: True) == {a + b + c for a in (8, 4) for b in (4, 2) for c in (4, 2)}
    stem = concat.parts[0].group
    assert concat.widths((0.0, 0.5), lambda group: group is stem) == {16, 12}


def test_every_group_of_a_torchvision_resnet_but_the_classifier_is_prunable():
    model = _torchvision("resnet18")[0]
    graph = analyse(model)
    assert [g.producers[0] for g in graph.groups if not g.prunable] == ["fc"]
