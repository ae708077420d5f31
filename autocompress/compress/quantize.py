"""Fake quantization for quantization-aware training (QAT).

Weights: per-output-channel symmetric, any bit-width 2..8. Activations (a layer's
input): per-tensor affine with a running min/max range. Rounding uses a
straight-through estimator so gradients pass. 32 bits means float (no fake-quant).
The modules subclass ``nn.Conv2d``/``nn.Linear`` in the manner of ``torch.ao``'s QAT
modules, so code that looks for convs and linears still finds them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from autocompress.candidate import FLOAT_BITS


def round_ste(x: torch.Tensor) -> torch.Tensor:
    """Round in the forward pass, identity in the backward pass."""
    return x + (torch.round(x) - x).detach()


def weight_scale(weight: torch.Tensor, bits: int) -> torch.Tensor:
    """Per-output-channel symmetric scale, shaped to broadcast against ``weight``."""
    qmax = 2 ** (bits - 1) - 1
    amax = weight.detach().abs().flatten(1).amax(dim=1).clamp_min(1e-8)
    return (amax / qmax).view(-1, *([1] * (weight.dim() - 1)))


def quantize_weight_int(weight: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer weights and their per-channel scales (what an export stores)."""
    qmax = 2 ** (bits - 1) - 1
    scale = weight_scale(weight, bits)
    return torch.clamp(torch.round(weight / scale), -qmax, qmax), scale


def fake_quant_weight(weight: torch.Tensor, bits: int) -> torch.Tensor:
    if bits >= FLOAT_BITS:
        return weight
    qmax = 2 ** (bits - 1) - 1
    scale = weight_scale(weight, bits)
    return torch.clamp(round_ste(weight / scale), -qmax, qmax) * scale


class ActivationFakeQuant(nn.Module):
    """Per-tensor affine fake-quant of activations with a running min/max range.

    The range follows an exponential moving average while training (or calibrating)
    and is frozen in eval mode; it is set from the first batch it sees.
    """

    def __init__(self, bits: int, momentum: float = 0.1) -> None:
        super().__init__()
        self.bits = bits
        self.momentum = momentum
        self.calibrating = False
        self.register_buffer("low", torch.tensor(0.0))
        self.register_buffer("high", torch.tensor(0.0))
        self.register_buffer("initialised", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.bits >= FLOAT_BITS:
            return x
        if self.training or self.calibrating or not bool(self.initialised):
            self._observe(x.detach())
        levels = 2**self.bits - 1
        low, high = self.low, torch.maximum(self.high, self.low + 1e-6)
        scale = (high - low) / levels
        zero = torch.round(-low / scale)
        q = torch.clamp(round_ste(x / scale) + zero, 0, levels)
        return (q - zero) * scale

    @torch.no_grad()
    def _observe(self, x: torch.Tensor) -> None:
        low, high = x.min().clamp(max=0.0), x.max()  # the range always holds 0 (on any device)
        if not bool(self.initialised):
            self.low.copy_(low)
            self.high.copy_(high)
            self.initialised.fill_(True)
        else:
            self.low.lerp_(low, self.momentum)
            self.high.lerp_(high, self.momentum)

    def extra_repr(self) -> str:
        return f"bits={self.bits}"


def _move_weights(source: nn.Module, target: nn.Module) -> None:
    """Give ``target`` the weight and bias of ``source``, keeping any weight parametrization
    (an unstructured-sparsity mask stays applied under the fake-quant)."""
    if parametrize.is_parametrized(source, "weight"):
        target.weight = nn.Parameter(source.parametrizations.weight.original.detach().clone())
        for parametrization in source.parametrizations.weight:
            parametrize.register_parametrization(target, "weight", parametrization)
    else:
        target.weight = source.weight
    target.bias = source.bias


class QuantConv2d(nn.Conv2d):
    """Conv2d with fake-quantized weights and input activations."""

    @classmethod
    def from_float(cls, conv: nn.Conv2d, weight_bits: int, activation_bits: int) -> QuantConv2d:
        quant = cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
            conv.dilation, conv.groups, conv.bias is not None, conv.padding_mode,
        )
        _move_weights(conv, quant)
        quant.weight_bits = weight_bits
        quant.input_quant = ActivationFakeQuant(activation_bits)
        return quant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = fake_quant_weight(self.weight, self.weight_bits)
        return self._conv_forward(self.input_quant(x), weight, self.bias)


class QuantLinear(nn.Linear):
    """Linear with fake-quantized weights and input activations."""

    @classmethod
    def from_float(cls, linear: nn.Linear, weight_bits: int, activation_bits: int) -> QuantLinear:
        quant = cls(linear.in_features, linear.out_features, linear.bias is not None)
        _move_weights(linear, quant)
        quant.weight_bits = weight_bits
        quant.input_quant = ActivationFakeQuant(activation_bits)
        return quant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.input_quant(x), fake_quant_weight(self.weight, self.weight_bits), self.bias)


def quantize_module(module: nn.Module, weight_bits: int, activation_bits: int) -> nn.Module:
    """The fake-quant twin of a Conv2d or Linear (the module itself at 32/32 bits)."""
    if weight_bits >= FLOAT_BITS and activation_bits >= FLOAT_BITS:
        return module
    if isinstance(module, nn.Conv2d):
        return QuantConv2d.from_float(module, weight_bits, activation_bits)
    if isinstance(module, nn.Linear):
        return QuantLinear.from_float(module, weight_bits, activation_bits)
    raise TypeError(f"cannot quantize {type(module).__name__}: only Conv2d and Linear")


def weight_bits_of(module: nn.Module) -> int:
    return getattr(module, "weight_bits", FLOAT_BITS)


def activation_bits_of(module: nn.Module) -> int:
    quant = getattr(module, "input_quant", None)
    return quant.bits if quant is not None else FLOAT_BITS


@torch.no_grad()
def calibrate_activations(model: nn.Module, batches) -> None:
    """Set activation ranges from data without training (post-training quantization)."""
    observers = [m for m in model.modules() if isinstance(m, ActivationFakeQuant)]
    was_training = model.training
    model.eval()
    for observer in observers:
        observer.calibrating = True
        observer.initialised.fill_(False)
    for x in batches:
        model(x)
    for observer in observers:
        observer.calibrating = False
    model.train(was_training)
