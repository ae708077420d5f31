"""Coupled channel pruning: layers whose outputs meet at a residual add lose the same channels."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from autocompress.candidate import LayerPolicy
from autocompress.compress.coupling import channel_groups
from autocompress.compress.policy import apply_policy
from autocompress.compress.prune import PruningError, prune_channels


class _Block(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))) + x)


class _ResNet(nn.Module):
    """stem -> two residual blocks -> pool -> linear: the stem and both conv2 are coupled."""

    def __init__(self, channels: int = 64) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, channels, 3, padding=1)
        self.blocks = nn.Sequential(_Block(channels), _Block(channels))
        self.fc = nn.Linear(channels, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(torch.relu(self.stem(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


def _net(channels: int = 64) -> _ResNet:
    torch.manual_seed(0)
    model = _ResNet(channels)
    for module in model.modules():  # non-trivial batch norms, so that slicing them is checked
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
            module.running_mean.uniform_(-0.1, 0.1)
    return model.eval()


COUPLED = ["stem", "blocks.0.conv2", "blocks.1.conv2"]


def test_groups_join_the_layers_that_meet_at_an_add():
    groups = {tuple(g.producers): g for g in channel_groups(_net(8))}
    assert set(groups) == {tuple(COUPLED), ("blocks.0.conv1",), ("blocks.1.conv1",), ("fc",)}
    stage = groups[tuple(COUPLED)]
    assert stage.prunable and stage.followers == ["blocks.0.bn2", "blocks.1.bn2"]
    assert stage.consumers == ["blocks.0.conv1", "blocks.1.conv1", "fc"]
    assert not groups[("fc",)].prunable


def test_coupled_pruning_removes_the_same_channels_everywhere_and_keeps_the_output_shape():
    model = _net(16)
    params = sum(p.numel() for p in model.parameters())
    assert prune_channels(model, "blocks.1.conv2", 0.5) == 8
    assert model.stem.out_channels == model.blocks[0].bn2.num_features == model.blocks[1].conv2.out_channels == 8
    assert model.blocks[0].conv1.in_channels == model.blocks[1].conv1.in_channels == model.fc.in_features == 8
    assert model.blocks[0].conv1.out_channels == 16  # its own group, not asked
    assert sum(p.numel() for p in model.parameters()) < params
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 10)


@torch.no_grad()
def test_pruning_channels_that_carry_nothing_leaves_the_outputs_unchanged():
    """Channels whose every producer and batch norm are zero contribute nothing downstream:
    removing them (they have the lowest summed importance) must not change one output."""
    model = _net(16)
    dead = torch.arange(0, 16, 2)
    for name in COUPLED:
        model.get_submodule(name).weight[dead] = 0.0
    model.stem.bias[dead] = 0.0
    for block in model.blocks:
        block.bn2.weight[dead], block.bn2.bias[dead] = 0.0, 0.0
    x = torch.randn(4, 3, 8, 8)
    reference = model(x)
    prune_channels(model, "stem", 0.5)
    assert model.stem.out_channels == 8
    assert torch.allclose(model(x), reference, atol=1e-5)


def test_a_group_meeting_the_input_is_refused():
    class _InputSkip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.fc = nn.Linear(3, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc((self.conv(x) + x).mean((2, 3)))

    with pytest.raises(PruningError, match="conv: its channels meet the model's input"):
        prune_channels(_InputSkip(), "conv", 0.5)


def test_apply_policy_prunes_a_coupled_group_once_at_its_largest_ratio():
    model = _net(16)
    half, quarter = LayerPolicy(sparsity=0.5), LayerPolicy(sparsity=0.25)
    apply_policy(model, {"stem": quarter, "blocks.0.conv2": half, "blocks.1.conv1": quarter})
    assert model.stem.out_channels == model.blocks[1].conv2.out_channels == 8
    assert model.blocks[1].conv1.out_channels == 12 and model.blocks[0].conv1.out_channels == 16


def _batch_ms(models: list[nn.Module], x: torch.Tensor, rounds: int = 7) -> list[float]:
    """Each model's fastest call over interleaved rounds (a slow spell hits all of them)."""
    best = [float("inf")] * len(models)
    with torch.inference_mode():
        for model in models:
            model(x)
        for _ in range(rounds):
            for index, model in enumerate(models):
                start = time.perf_counter()
                model(x)
                best[index] = min(best[index], time.perf_counter() - start)
    return [1000 * seconds for seconds in best]


def test_coupled_pruning_makes_a_residual_net_faster():
    model, pruned = _net(64), _net(64)
    apply_policy(pruned, {name: LayerPolicy(sparsity=0.5) for name in [*COUPLED, "blocks.0.conv1", "blocks.1.conv1"]})
    assert pruned.blocks[1].conv2.out_channels == 32
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        full_ms, pruned_ms = _batch_ms([model, pruned], torch.randn(32, 3, 16, 16))
    finally:
        torch.set_num_threads(threads)
    assert pruned_ms <= 0.85 * full_ms, (full_ms, pruned_ms)


def test_a_space_read_by_grouped_convs_of_different_groups_is_refused_with_the_reason():
    class _TwoGroupings(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.reduce = nn.Conv2d(3, 8, 1)
            self.pairs, self.quads = nn.Conv2d(8, 4, 3, groups=2), nn.Conv2d(8, 8, 3, groups=4)
            self.fc = nn.Linear(12, 2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.reduce(x)
            return self.fc(torch.cat([self.pairs(x), self.quads(x)], 1).mean((2, 3)))

    model = _TwoGroupings()
    with pytest.raises(PruningError, match="reduce: its channels meet grouped convs of 2 and 4 groups"):
        prune_channels(model, "reduce", 0.5)
    assert prune_channels(model, "quads", 0.5) == 4 and model.fc.in_features == 8 and model.quads.groups == 4
