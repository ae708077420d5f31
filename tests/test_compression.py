"""The four knobs on real layers: they change shapes, sizes and outputs as they claim."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from autocompress.candidate import LayerPolicy
from autocompress.compress.freeze import freeze
from autocompress.compress.lowrank import factorise
from autocompress.compress.policy import apply_policy
from autocompress.compress.prune import PruningError, prune_channels, prune_unstructured, weight_mask
from autocompress.compress.quantize import fake_quant_weight, quantize_module
from autocompress.compress.size import model_size_bytes
from autocompress.models.family import family_of
from autocompress.models.mobilenet import MobileNet


def _plain_net() -> nn.Sequential:
    """Not one of ours: the knobs must work on any torch model."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 5),
    ).eval()


@pytest.mark.parametrize(
    "layer",
    [nn.Linear(40, 24), nn.Conv2d(24, 48, 1), nn.Conv2d(8, 12, 3, padding=1), nn.Conv2d(6, 10, 5, 2, 2)],
)
def test_svd_full_rank_reproduces_and_error_falls_with_rank(layer):
    torch.manual_seed(1)
    x = torch.randn(4, 40) if isinstance(layer, nn.Linear) else torch.randn(2, layer.in_channels, 9, 9)
    reference = layer(x).detach()
    full = min(layer.weight.shape[0], layer.weight[0].numel())
    assert (factorise(layer, full)(x) - reference).abs().max() < 1e-4
    errors = [float((factorise(layer, r)(x) - reference).abs().mean().detach()) for r in (1, full // 2, full - 1)]
    assert errors[0] > errors[1] > errors[2]


def test_channel_pruning_halves_filters_and_fixes_consumers():
    model = _plain_net()
    params = sum(p.numel() for p in model.parameters())
    kept = prune_channels(model, "0", 0.5)
    assert kept == 8
    assert model[0].out_channels == 8 and model[1].num_features == 8
    assert model[3].in_channels == model[3].out_channels == model[3].groups == 8
    assert model[6].in_channels == 8
    assert sum(p.numel() for p in model.parameters()) < params
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 5)


def test_channel_pruning_keeps_the_largest_filters():
    model = _plain_net()
    with torch.no_grad():
        model[6].weight[:16] *= 100.0
    prune_channels(model, "6", 0.5)
    assert model[6].out_channels == 16 and model[10].in_features == 16
    assert model[6].weight.abs().mean() > 1.0


def test_channel_pruning_of_a_residual_layer_prunes_its_coupled_stage(default_space):
    model = MobileNet(default_space, family_of(default_space).largest_arch()).eval()
    kept = prune_channels(model, "stages.3.1.project.conv", 0.5)
    stage = model.stages[3]
    assert kept == 12
    assert [block.project.conv.out_channels for block in stage] == [12, 12, 12]
    assert [block.expand.conv.in_channels for block in stage[1:]] == [12, 12]
    assert model.stages[4][0].expand.conv.in_channels == 12
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def test_channel_pruning_refuses_the_model_output(default_space):
    model = MobileNet(default_space, family_of(default_space).largest_arch())
    with pytest.raises(PruningError, match="classifier: its channels are the model's output"):
        prune_channels(model, "classifier", 0.5)


def test_channel_pruning_through_squeeze_excite_in_our_network(default_space):
    arch = family_of(default_space).largest_arch()
    model = MobileNet(default_space, arch).eval()
    assert arch[1].squeeze_excite
    hidden = model.stages[1][0].expand.conv.out_channels
    prune_channels(model, "stages.1.0.expand.conv", 0.5)
    block = model.stages[1][0]
    assert block.dw.conv.out_channels == block.se.expand.out_channels == hidden // 2
    assert block.project.conv.in_channels == hidden // 2
    assert model(torch.randn(2, 1, 16, 16)).shape == (2, 10)


def test_unstructured_mask_stays_applied_through_training():
    layer = nn.Linear(32, 32)
    prune_unstructured(layer, 0.75)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.5)
    for _ in range(5):
        optimizer.zero_grad()
        layer(torch.randn(8, 32)).pow(2).sum().backward()
        optimizer.step()
    zero_share = float((layer.weight == 0).float().mean())
    assert zero_share == pytest.approx(0.75, abs=0.01)
    assert torch.equal(layer.weight == 0, weight_mask(layer) == 0)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_weight_fake_quant_has_per_channel_levels_and_passes_gradients(bits):
    torch.manual_seed(0)
    weight = (torch.randn(6, 10) * torch.arange(1, 7)[:, None]).requires_grad_()
    quantized = fake_quant_weight(weight, bits)
    for row in quantized.detach():
        assert len(torch.unique(row)) <= 2**bits - 1
    quantized.sum().backward()
    assert torch.equal(weight.grad, torch.ones_like(weight))


def test_quantized_error_shrinks_with_bits():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 16, 3, padding=1)
    x = torch.randn(2, 8, 6, 6)
    reference = conv(x).detach()
    errors = []
    for bits in (2, 4, 8):
        quant = quantize_module(copy.deepcopy(conv), bits, 32)
        errors.append(float((quant(x).detach() - reference).abs().mean()))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.01 * reference.abs().mean()


def test_size_counts_bits_sparsity_and_factorisation(default_space):
    arch = family_of(default_space).largest_arch()

    def size(**policy):
        model = MobileNet(default_space, arch)
        return model_size_bytes(apply_policy(model, family_of(default_space).uniform_candidate(arch, **policy).policy))

    float_size = size()
    assert size(weight_bits=8) < 0.35 * float_size
    assert size(weight_bits=4) < size(weight_bits=8)
    assert size(sparsity=0.5, sparsity_kind="channel") < 0.7 * float_size
    assert size(sparsity=0.75, sparsity_kind="unstructured") < 0.5 * float_size
    assert size(rank_ratio=0.25) < float_size


def test_policy_order_low_rank_then_pruning_then_quantization(default_space):
    arch = family_of(default_space).largest_arch()
    model = MobileNet(default_space, arch).eval()
    hidden = model.stages[2][0].expand.conv.out_channels
    name = "stages.2.0.expand.conv"
    apply_policy(model, {name: LayerPolicy(weight_bits=4, activation_bits=8, sparsity=0.5, rank_ratio=0.5)})
    factors = model.get_submodule(name)
    assert factors[1].out_channels == hidden // 2
    assert all(getattr(f, "weight_bits", 32) == 4 for f in factors)
    x = torch.randn(2, 1, 16, 16)
    assert torch.allclose(freeze(model)(x), model(x), atol=0.2)
