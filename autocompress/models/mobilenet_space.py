"""The MobileNet family's settings: its ``network`` and ``choices`` in a space file, and the
architecture of one stage in a candidate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import Field

from autocompress.models.staged import DepthChoices, StageSettings
from autocompress.space import Choices, NetworkSettings, SearchSpace


@dataclass(frozen=True)
class StageArch:
    depth: int
    kernel_size: int
    expand_ratio: int
    squeeze_excite: bool

    def label(self) -> str:
        return f"d{self.depth} k{self.kernel_size} e{self.expand_ratio}{' se' if self.squeeze_excite else ''}"


class MobileNetNetwork(NetworkSettings):
    family: Literal["mobilenet"] = Field("mobilenet", description=(
        "model family, registered by name (autocompress/models/family.py)"))
    stem_channels: int = Field(16, ge=4, le=256)
    head_channels: int = Field(128, ge=8, le=4096)
    stages: list[StageSettings] = Field(min_length=1, max_length=8)


class BlockChoices(DepthChoices):
    kernel_size: list[Literal[3, 5, 7]] = Field(min_length=1)
    expand_ratio: list[Literal[3, 4, 6]] = Field(min_length=1)
    squeeze_excite: list[bool] = Field(min_length=1)


class MobileNetChoices(Choices):
    block: BlockChoices


class MobileNetSpace(SearchSpace):
    network: MobileNetNetwork
    choices: MobileNetChoices

