"""What the families built of stages of blocks (MobileNet, ResNet) share: each stage's
width, stride and depth cap, the depths a stage may take, and a family base that searches
one policy per stage and trains its base from the largest block choices."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from autocompress.models.family import ModelFamily
from autocompress.space import StrictModel, distinct_within


class StageSettings(StrictModel):
    channels: int = Field(ge=4, le=1024)
    stride: Literal[1, 2]
    max_depth: int = Field(ge=1, le=6)


class DepthChoices(StrictModel):
    depth: list[int] = Field(min_length=1)

    @field_validator("depth")
    @classmethod
    def _positive_depths(cls, value: list[int]) -> list[int]:
        return distinct_within(value, 1, 6, "depths")

    def depths_for(self, stage: StageSettings) -> list[int]:
        """Depth choices of one stage: the block depths that fit its ``max_depth``."""
        return [d for d in self.depth if d <= stage.max_depth] or [stage.max_depth]


class StagedFamily(ModelFamily):
    """A family whose ``choices.block`` are its architecture choices and whose layers are
    grouped by stage (``stem``, ``stages.<i>``, ``head``, ``classifier``)."""

    def fingerprint(self) -> object:
        """The block choices: their largest values make the base network."""
        return self.space.choices.block.model_dump()

    def layer_group(self, layer_name: str) -> str:
        """``stages.2.1.expand.conv`` -> ``stages.2``; ``stem.conv`` -> ``stem``."""
        parts = layer_name.split(".")
        return ".".join(parts[:2]) if parts[0] == "stages" else parts[0]
