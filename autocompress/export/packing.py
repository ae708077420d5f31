"""Signed integers of any width 2..8 packed densely into bytes.

Each value is stored as its low ``bits`` bits in two's complement, little-endian bit
order; at 8 bits this is exactly an int8 array. One tensor's values are packed together,
so the padding is under one byte per tensor.
"""

from __future__ import annotations

import numpy as np


def packed_length(count: int, bits: int) -> int:
    return (count * bits + 7) // 8


def pack_ints(values: np.ndarray, bits: int) -> bytes:
    """Pack integers in [-2^(bits-1), 2^(bits-1) - 1] at ``bits`` bits each."""
    values = np.asarray(values, dtype=np.int64).ravel()
    low = -(2 ** (bits - 1))
    if values.size and (values.min() < low or values.max() > -low - 1):
        raise ValueError(f"values outside the {bits}-bit range")
    unsigned = (values & (2**bits - 1)).astype(np.uint8)
    planes = np.unpackbits(unsigned[:, None], axis=1, bitorder="little")[:, :bits]
    return np.packbits(planes.ravel(), bitorder="little").tobytes()


def unpack_ints(data: bytes, bits: int, count: int) -> np.ndarray:
    """The ``count`` integers :func:`pack_ints` packed into ``data``."""
    planes = np.unpackbits(np.frombuffer(data, dtype=np.uint8), bitorder="little")[: count * bits]
    weights = (1 << np.arange(bits)).astype(np.int64)
    unsigned = planes.reshape(count, bits).astype(np.int64) @ weights
    return np.where(unsigned >= 2 ** (bits - 1), unsigned - 2**bits, unsigned)
