"""weights.bin: a compressed model's tensors stored at their bit-widths, in one blob.

The blob has no header: its layout follows from the model's structure, which
``ModelFamily.build_compressed(candidate)`` rebuilds (pruned channels removed,
factorised layers split). Walking the modules in order, each conv/linear stores
  [occupancy bitmap, 1 bit per weight, if unstructured-sparse]
  [per-output-channel float32 scales, if quantized]
  weights (only the kept ones if sparse): integer codes bit-packed at the layer's width
    (an int8 array at 8 bits), or float32 at 32 bits
  [float32 bias]
each batch norm its float32 weight, bias, running mean and variance, and each quantized
activation its float32 range (low, high). That is what ``compress/size.py`` counts, so
the file's size matches the size the search reported, up to under one byte a tensor.
(size.py's alternative of 16-bit indices is smaller only below 1/16 density; the space
allows at most 75% sparsity.)
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from torch import nn

from autocompress.candidate import FLOAT_BITS, Candidate
from autocompress.compress.prune import weight_mask
from autocompress.compress.quantize import ActivationFakeQuant, quantize_weight_int, weight_bits_of
from autocompress.errors import UserInputError
from autocompress.export.packing import pack_ints, packed_length, unpack_ints
from autocompress.models.family import family_of
from autocompress.space import SearchSpace


class _Encoder:
    """Appends tensors to the blob; returns them unchanged."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def floats(self, tensor: torch.Tensor) -> torch.Tensor:
        self.chunks.append(tensor.detach().numpy().astype("<f4").tobytes())
        return tensor

    def bitmap(self, mask: torch.Tensor) -> torch.Tensor:
        self.chunks.append(np.packbits(mask.numpy().ravel().astype(bool), bitorder="little").tobytes())
        return mask

    def ints(self, codes: torch.Tensor, bits: int) -> torch.Tensor:
        self.chunks.append(pack_ints(codes.numpy().astype(np.int64), bits))
        return codes


class _Decoder:
    """Reads tensors shaped like the ones it is given, in the encoder's order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def _take(self, length: int) -> bytes:
        if self.offset + length > len(self.data):
            raise UserInputError("weights.bin is shorter than its model needs: wrong candidate or space?")
        chunk = self.data[self.offset : self.offset + length]
        self.offset += length
        return chunk

    def floats(self, like: torch.Tensor) -> torch.Tensor:
        array = np.frombuffer(self._take(4 * like.numel()), dtype="<f4").astype(np.float32)
        return torch.from_numpy(array).reshape(like.shape)

    def bitmap(self, like: torch.Tensor) -> torch.Tensor:
        bits = np.unpackbits(np.frombuffer(self._take((like.numel() + 7) // 8), dtype=np.uint8),
                             bitorder="little")[: like.numel()]
        return torch.from_numpy(bits.astype(bool)).reshape(like.shape)

    def ints(self, like: torch.Tensor, bits: int) -> torch.Tensor:
        count = like.numel()
        return torch.from_numpy(unpack_ints(self._take(packed_length(count, bits)), bits, count)).float()


def _dense_layer(module: nn.Module, stream: _Encoder | _Decoder) -> None:
    bits = weight_bits_of(module)
    weight = module.weight.detach()
    mask = weight_mask(module)
    keep = stream.bitmap(mask.bool()) if mask is not None else torch.ones_like(weight, dtype=torch.bool)
    if bits < FLOAT_BITS:
        codes, scale = quantize_weight_int(weight, bits)
        scale = stream.floats(scale.flatten()).view_as(scale)
        codes[keep] = stream.ints(codes[keep], bits)
        values = codes * scale
    else:
        values = weight.clone()
        values[keep] = stream.floats(values[keep])
    values = values * keep
    if mask is not None:
        module.parametrizations.weight.original.copy_(values)
        mask.copy_(keep)
    else:
        module.weight.copy_(values)
    if module.bias is not None:
        module.bias.copy_(stream.floats(module.bias))


@torch.no_grad()
def _walk(model: nn.Module, stream: _Encoder | _Decoder) -> None:
    """Store (encoder) or load (decoder) every tensor inference needs, in module order."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            _dense_layer(module, stream)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(module, name).copy_(stream.floats(getattr(module, name)))
        elif isinstance(module, ActivationFakeQuant) and module.bits < FLOAT_BITS:
            module.low.copy_(stream.floats(module.low))
            module.high.copy_(stream.floats(module.high))
            module.initialised.fill_(True)


def encode(model: nn.Module) -> bytes:
    """The weights.bin blob of a compressed model (the model is left untouched)."""
    encoder = _Encoder()
    _walk(copy.deepcopy(model).eval(), encoder)
    return b"".join(encoder.chunks)


def decode(space: SearchSpace, candidate: Candidate, data: bytes) -> nn.Module:
    """The compressed model of ``candidate`` with the weights of blob ``data``, in eval mode."""
    model = family_of(space).build_compressed(candidate).eval()
    decoder = _Decoder(data)
    _walk(model, decoder)
    if decoder.offset != len(data):
        raise UserInputError(f"weights.bin has {len(data) - decoder.offset} bytes more than its model needs: "
                             "wrong candidate or space?")
    return model


def write_weights(model: nn.Module, path: Path) -> int:
    """Write ``model``'s weights.bin to ``path``; returns its size in bytes."""
    data = encode(model)
    Path(path).write_bytes(data)
    return len(data)


def read_weights(space: SearchSpace, candidate: Candidate, path: Path) -> nn.Module:
    return decode(space, candidate, Path(path).read_bytes())


