"""Freeze a compressed model into a plain float model for inference and export.

Fake-quant layers become ordinary Conv2d/Linear layers whose weights hold the quantized
values (dequantized), unstructured masks are multiplied in, and the activation fake-quant
is dropped: a runtime's own int8 path (ONNX Runtime QDQ) quantizes activations itself.
The result has exactly the shapes the compressed model has (pruned, factorised).
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.utils import parametrize

from autocompress.compress.quantize import QuantConv2d, QuantLinear, fake_quant_weight, weight_bits_of


@torch.no_grad()
def _plain(module: nn.Module) -> nn.Module:
    weight = fake_quant_weight(module.weight.detach(), weight_bits_of(module))
    if isinstance(module, nn.Conv2d):
        plain = nn.Conv2d(module.in_channels, module.out_channels, module.kernel_size, module.stride,
                          module.padding, module.dilation, module.groups, module.bias is not None,
                          module.padding_mode)
    else:
        plain = nn.Linear(module.in_features, module.out_features, module.bias is not None)
    plain.weight.copy_(weight)
    if module.bias is not None:
        plain.bias.copy_(module.bias)
    return plain


def freeze(model: nn.Module) -> nn.Module:
    """A float copy of ``model`` with quantized weights and sparsity baked in, in eval mode."""
    frozen = copy.deepcopy(model).eval()
    targets = [
        name for name, m in frozen.named_modules()
        if isinstance(m, (QuantConv2d, QuantLinear))
        or (isinstance(m, (nn.Conv2d, nn.Linear)) and parametrize.is_parametrized(m, "weight"))
    ]
    for name in targets:
        frozen.set_submodule(name, _plain(frozen.get_submodule(name)))
    return frozen
