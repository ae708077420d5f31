"""Candidate: one architecture plus a per-layer compression policy, as plain JSON.

The architecture is one frozen dataclass per stage, of the model family's ``stage_type``
(a family without architecture choices has none). Layer names are the model's module paths
(``stages.1.0.expand.conv``). A candidate round-trips through JSON and has a stable hash of
its canonical JSON form.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from autocompress.errors import UserInputError

FLOAT_BITS = 32


class Stage(Protocol):
    """One stage's architecture choices: a frozen dataclass of a family (``ModelFamily.stage_type``)."""

    def label(self) -> str:
        """The choices in a few characters, for tables (``d2 k5 e6``)."""


@dataclass(frozen=True)
class LayerPolicy:
    """Compression of one layer. Defaults mean 'left as it is'."""

    weight_bits: int = FLOAT_BITS
    activation_bits: int = FLOAT_BITS
    sparsity: float = 0.0
    sparsity_kind: str = "channel"
    rank_ratio: float = 1.0


@dataclass(frozen=True)
class Candidate:
    stages: tuple[Stage, ...]
    policy: dict[str, LayerPolicy] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        # stages and policies are flat dataclasses: copying their fields is what ``asdict``
        # does, at a fraction of its cost (the screening hashes thousands of candidates)
        return {
            "stages": [dict(vars(s)) for s in self.stages],
            "policy": {name: dict(vars(p)) for name, p in sorted(self.policy.items())},
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=indent)

    @classmethod
    def from_dict(cls, data: dict[str, Any], stage_type: type[Stage]) -> Candidate:
        """``stage_type``: the model family's stage dataclass (``ModelFamily.parse_candidate``)."""
        try:
            stages = tuple(stage_type(**s) for s in data["stages"])
            policy = {name: LayerPolicy(**p) for name, p in data.get("policy", {}).items()}
        except (KeyError, TypeError) as error:
            raise UserInputError(f"candidate JSON is malformed: {error}") from None
        return cls(stages, policy)

    @classmethod
    def from_json(cls, text: str, stage_type: type[Stage]) -> Candidate:
        return cls.from_dict(json.loads(text), stage_type)

    @functools.cached_property
    def hash(self) -> str:
        """Stable 16-hex-digit digest of the canonical JSON (sorted keys, no spaces); computed
        once, as a candidate is never changed after it is made."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def layer_policy(self, name: str) -> LayerPolicy:
        return self.policy.get(name, LayerPolicy())
