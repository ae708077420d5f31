"""Compressed model size in bytes: what an export of the model really has to store.

Each weight of a conv/linear counts at its layer's bit-width; unstructured-sparse weights
store only the non-zeros plus a one-bit-per-weight occupancy map (or 16-bit indices,
whichever is smaller); quantized layers add one float32 scale per output channel;
everything else that inference needs (biases, batch-norm affine and statistics) counts
as float32.
"""

from __future__ import annotations

from torch import nn

from autocompress.compress.prune import weight_mask
from autocompress.compress.quantize import ActivationFakeQuant, weight_bits_of


def layer_weight_bits(module: nn.Module) -> int:
    """Bits needed for one conv/linear layer's weight tensor, with sparse-index overhead."""
    bits = weight_bits_of(module)
    weight = module.weight
    mask = weight_mask(module)
    numel = weight.numel()
    if mask is None:
        stored = numel * bits
    else:
        nonzero = int(mask.count_nonzero())
        stored = nonzero * bits + min(numel, nonzero * 16)
    if bits < 32:
        stored += weight.shape[0] * 32
    return stored


def model_size_bytes(model: nn.Module) -> int:
    """Compressed size of ``model`` in bytes (see module docstring)."""
    total_bits = 0
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            total_bits += layer_weight_bits(module)
            if module.bias is not None:
                total_bits += module.bias.numel() * 32
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            total_bits += 4 * module.num_features * 32
        elif isinstance(module, ActivationFakeQuant) and module.bits < 32:
            total_bits += 2 * 32
    return (total_bits + 7) // 8

