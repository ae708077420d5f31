"""Fusion rules as data: consecutive ops a runtime runs as one kernel.

A candidate's ops (``OpSignature``, one per layer-level op) become the runtime's kernels
by applying its rules left to right, longest rule first: where a rule's op kinds follow
one another, each later op consuming a tensor of the head op's output shape, the head op
takes the others into its ``fused`` ops and the whole pattern is ONE table entry (keyed
``head>op>op``) and one timed unit. This is the kernel detection of nn-Meter (Zhang et
al., MobiSys 2021) for a runtime whose fusions are few and known.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from autocompress.hw.ops import OpSignature


@dataclass(frozen=True)
class FusionRule:
    """``ops`` (op kinds, the head first) run as the single kernel ``kernel``, when the head
    op's epilogue is ``head_epilogue`` (an activation already fused into a conv ends it)."""

    kernel: str
    ops: tuple[str, ...]
    head_epilogue: str

    def head_matches(self, op: OpSignature) -> bool:
        return op.op == self.ops[0] and op.epilogue == self.head_epilogue and not op.fused

    def tail_matches(self, head: OpSignature, tail: Sequence[OpSignature]) -> bool:
        return (len(tail) == len(self.ops) - 1
                and all(o.op == kind and o.shape == head.out_shape for o, kind in zip(tail, self.ops[1:], strict=True)))


def _longest_first(rules: Iterable[FusionRule]) -> list[FusionRule]:
    return sorted(rules, key=lambda r: -len(r.ops))


def fuse(ops: Sequence[OpSignature], rules: Sequence[FusionRule]) -> list[OpSignature]:
    """The kernels a runtime with ``rules`` runs for a network's ops, in order."""
    ordered = _longest_first(rules)
    kernels: list[OpSignature] = []
    index = 0
    while index < len(ops):
        head = ops[index]
        rule = next((r for r in ordered if r.head_matches(head)
                     and r.tail_matches(head, ops[index + 1:index + len(r.ops)])), None)
        if rule is None:
            kernels.append(head)
            index += 1
        else:
            tail = tuple(ops[index + 1:index + len(rule.ops)])
            kernels.append(dataclasses.replace(head, fused=tail))
            index += len(rule.ops)
    return kernels


def fuse_space(ops: Sequence[OpSignature], rules: Sequence[FusionRule]) -> list[OpSignature]:
    """Every kernel a candidate made of ``ops`` (a space's distinct ops) can run: each op
    alone, and each head op fused with every op of each following kind and of its output
    shape (a superset: a pair whose ops never meet in a network is measured for nothing)."""
    found = set(ops)
    for rule in rules:
        for head in filter(rule.head_matches, ops):
            tails = [[o for o in ops if o.op == kind and o.shape == head.out_shape] for kind in rule.ops[1:]]
            found.update(dataclasses.replace(head, fused=tail) for tail in itertools.product(*tails))
    return sorted(found)
