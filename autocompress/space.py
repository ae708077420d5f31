"""Search space: YAML validated on load into typed settings.

A wrong key, type or value fails with one line naming the file, the key path and what
is allowed (``UserInputError``), so the CLI can exit with status 2 before writing anything.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

T = TypeVar("T")
WeightBits = Literal[2, 3, 4, 5, 6, 7, 8, 32]
ActivationBits = Literal[4, 8, 32]
SparsityKind = Literal["channel", "unstructured"]


class StrictModel(BaseModel):
    """Settings that refuse unknown keys, infinities and NaN, and never change once read."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DataSettings(StrictModel):
    source: str = Field("digits", description="digits | npz:PATH | folder:PATH")
    image_size: int = Field(16, ge=8, le=224)
    channels: int = Field(1, ge=1, le=4, description="image channels: 1 for digits")
    num_classes: int = Field(10, ge=2, le=1000)
    val_fraction: float = Field(0.25, gt=0.0, lt=0.9)
    test_fraction: float = Field(0.2, gt=0.0, lt=0.9, description=(
        "share of each class held out as the test split: never seen by the search, measured on the final front"))
    seed: int = Field(0, ge=0, le=2**32 - 1, description=(
        "fixes the train / validation / test split; numpy and torch take seeds in 0..2**32-1"))
    loader_workers: int = Field(0, ge=0, le=64, description=(
        "processes decoding training batches of an npz or image folder in parallel (0: in the training process)"))

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        if value == "digits" or value.startswith(("npz:", "folder:")):
            return value
        raise ValueError("must be 'digits', 'npz:PATH' or 'folder:PATH'")

    @model_validator(mode="after")
    def _room_to_train(self) -> DataSettings:
        if self.val_fraction + self.test_fraction > 0.8:
            raise ValueError("val_fraction + test_fraction must leave at least 0.2 of the data to train on")
        return self


class NetworkSettings(StrictModel):
    """What every family's ``network`` says: the family, registered by name; each family's
    settings class adds the rest (``ModelFamily.space_type``)."""

    family: str = Field(description="model family, registered by name (autocompress/models/family.py)")


def distinct_within(values: list, low: float, high: float, what: str, descending: bool = False) -> list:
    """``values`` sorted without repeats, if all lie in ``low..high``."""
    if any(v < low or v > high for v in values):
        raise ValueError(f"{what} must lie in {low}..{high}")
    return sorted(set(values), reverse=descending)


class LayerChoices(StrictModel):
    weight_bits: list[WeightBits] = Field(min_length=1)
    activation_bits: list[ActivationBits] = Field(min_length=1)
    sparsity_kind: list[SparsityKind] = Field(min_length=1)
    sparsity: list[float] = Field(min_length=1)
    rank_ratio: list[float] = Field(min_length=1)
    first_last_min_bits: Literal[4, 8] | None = Field(8, description=(
        "the first layer (stem conv) and the last (classifier) keep weights and activations at this many "
        "bits or more and are never pruned or factorised, as in HAQ and APQ; null searches them like any layer"))

    @field_validator("sparsity")
    @classmethod
    def _sparsity_range(cls, value: list[float]) -> list[float]:
        return distinct_within(value, 0.0, 0.75, "sparsity values")

    @field_validator("rank_ratio")
    @classmethod
    def _rank_range(cls, value: list[float]) -> list[float]:
        return distinct_within(value, 0.25, 1.0, "rank_ratio values", descending=True)


class Choices(StrictModel):
    """What every family's ``choices`` hold: the per-layer compression knobs; a family with
    architecture choices adds its ``block``."""

    layer: LayerChoices


class TrainingSettings(StrictModel):
    base_epochs: int = Field(30, ge=1, le=1000)
    finetune_epochs: int = Field(2, ge=0, le=100)
    batch_size: int = Field(64, ge=1, le=4096)
    lr: float = Field(0.05, gt=0.0, le=1.0)
    finetune_lr: float = Field(0.01, gt=0.0, le=1.0)
    distill_temperature: float = Field(4.0, gt=0.0)
    distill_alpha: float = Field(0.7, ge=0.0, le=1.0)
    subnets_per_step: int = Field(2, ge=0, le=8, description=(
        "subnets trained beside the largest network at each step of the base's training "
        "(sandwich rule: the smallest, then random ones); 0 trains the largest alone"))


class SearchSettings(StrictModel):
    granularity: Literal["group", "layer"] = Field("group", description=(
        "what one searched compression policy covers: a layer group (the stem, each stage, the head, "
        "the classifier) or each layer of the base network (many more parameters: for the predictor-guided search)"))


class SearchSpace(StrictModel):
    """What every search space holds; a family's space is a subclass narrowing ``network`` and
    ``choices`` to its own settings (``ModelFamily.space_type``, chosen by ``space_class``)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    data: DataSettings = DataSettings()
    network: NetworkSettings
    choices: Choices
    training: TrainingSettings = TrainingSettings()
    search: SearchSettings = SearchSettings()

    def input_shape(self, batch_size: int = 1) -> tuple[int, int, int, int]:
        """Shape of a batch of the space's images (N, C, H, W)."""
        size = self.data.image_size
        return (batch_size, self.data.channels, size, size)


def per_space(func: Callable[[SearchSpace], T]) -> Callable[[SearchSpace], T]:
    """Cache ``func(space)`` per space object: a space is frozen but holds lists, so it cannot
    be a dictionary key; the cache keeps the object alive, so its ``id`` stays its own."""
    cache: dict[int, tuple[SearchSpace, T]] = {}

    @functools.wraps(func)
    def cached(space: SearchSpace) -> T:
        entry = cache.get(id(space))
        if entry is None or entry[0] is not space:
            if len(cache) >= 64:
                cache.pop(next(iter(cache)))
            entry = cache[id(space)] = (space, func(space))
        return entry[1]

    return cached
