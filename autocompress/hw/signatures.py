"""The op signatures of candidates and of whole spaces, as their model family enumerates
them, at the precision and fused into the kernels a runtime runs (``hw.ops`` holds the
signature and the precision rule themselves)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Container, Iterable, Iterator, Sequence

from autocompress.candidate import Candidate
from autocompress.hw.ops import FLOAT, BitsRule, OpSignature
from autocompress.hw.runtimes.fusion import fuse, fuse_space
from autocompress.models.family import family_of
from autocompress.space import SearchSpace


def _int8_kernel(op: OpSignature) -> bool:
    return op.op in ("conv", "linear") and op.quantized


def runtime_precision(ops: Sequence[OpSignature], rule: BitsRule) -> list[OpSignature]:
    """``ops`` at the precision the runtime runs them, where that is not their layers' own.

    With ``rule.requantizes_between_int8``, a float conv right after an int8 conv or linear
    and right before another reads a dequantized tensor and feeds a quantize node: ONNX
    Runtime's QDQ fusion then quantizes its weights itself and runs ``QLinearConv`` (which
    for a 48-channel 7x7 depthwise conv at 16x16 takes 0.81 ms a batch against 0.58 ms as
    float). Read from the optimised graphs of the 100 validation networks of the int8
    profile: the rule names the 25 layers that ran so and no other; after a residual add,
    whose output has two readers, a float conv stays float.

    With ``rule.se_quantized_io``, a squeeze-excite gate right after an int8 kernel
    dequantizes that kernel's uint8 output (its pool then runs on the uint8 tensor) and one
    right before an int8 kernel quantizes its product for it, whatever the gate's own
    precision: in the optimised graphs of the 150 validation networks of the int8 profile
    (669 gates) the gate's input was dequantized exactly where the kernel before it was int8
    and its output quantized exactly where the kernel after it was.
    """
    result = list(ops)
    if rule.requantizes_between_int8:
        int8 = rule.kernel_bits(8, 8)
        for index in range(1, len(ops) - 1):
            op = ops[index]
            if op.op == "conv" and not op.quantized and _int8_kernel(ops[index - 1]) and _int8_kernel(ops[index + 1]):
                result[index] = dataclasses.replace(op, bits=int8)
    if rule.se_quantized_io:
        for index, op in enumerate(result):
            if op.op == "se":
                sides = (index > 0 and _int8_kernel(result[index - 1]),
                         index + 1 < len(result) and _int8_kernel(result[index + 1]))
                result[index] = dataclasses.replace(op, quantized_io=sides)
    return result


def quantized_io_variants(ops: Iterable[OpSignature], rule: BitsRule) -> set[OpSignature]:
    """``ops`` with, under ``rule.se_quantized_io``, each squeeze-excite gate on every side
    an int8 neighbour can give it (``runtime_precision``): the gates a table must hold."""
    found = set(ops)
    if rule.se_quantized_io:
        found |= {dataclasses.replace(op, quantized_io=sides) for op in found if op.op == "se"
                  for sides in itertools.product((False, True), repeat=2)}
    return found


_CACHE: dict[tuple[str, str, BitsRule], tuple[OpSignature, ...]] = {}
_CACHE_SIZE = 512


def candidate_signatures(space: SearchSpace, candidate: Candidate,
                         rule: BitsRule = FLOAT) -> list[OpSignature]:
    """The kernels of ``candidate`` once built and compressed, as its model family
    enumerates them (cached: a family without a fast path builds the network)."""
    key = (space.model_dump_json(), candidate.hash, rule)
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_SIZE:
            _CACHE.pop(next(iter(_CACHE)))
        ops = runtime_precision(family_of(space).candidate_ops(candidate, rule), rule)
        _CACHE[key] = tuple(fuse(ops, rule.fusion))
    return list(_CACHE[key])


def space_signatures(space: SearchSpace, rule: BitsRule = FLOAT) -> list[OpSignature]:
    """Every distinct signature any candidate of ``space`` can contain, sorted."""
    return fuse_space(sorted(quantized_io_variants(family_of(space).space_ops(rule), rule)), rule.fusion)



def missing(signatures: Iterable[OpSignature], keys: Container[str]) -> Iterator[OpSignature]:
    """The distinct signatures whose key is not in ``keys`` (a profile's entries, a set)."""
    return (s for s in dict.fromkeys(signatures) if s.key not in keys)
