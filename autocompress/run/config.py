"""A run's settings, frozen into its config file when it is created."""

from __future__ import annotations

import enum
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from autocompress.inputs import load_json, validated

Objective = Literal["accuracy", "latency_ms", "size_kb"]
MAX_SEED = 2**32 - 1
CONSTRAINED_COLUMNS = {"max_latency_ms": "latency_ms", "max_size_kb": "size_kb"}


class Constraints(BaseModel):
    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    max_latency_ms: float | None = Field(None, gt=0)
    max_size_kb: float | None = Field(None, gt=0)

    def violations(self, latency_ms: float, size_kb: float) -> dict[str, float]:
        """Optuna constraint values (<= 0 is feasible) of every constraint that is set."""
        limits = {"max_latency_ms": (self.max_latency_ms, latency_ms),
                  "max_size_kb": (self.max_size_kb, size_kb)}
        return {key: value - limit for key, (limit, value) in limits.items() if limit is not None}

    def rejection(self, latency_ms: float, size_kb: float) -> str | None:
        """Why a candidate with these predictions is rejected before training (None: it is not)."""
        broken = {k: v for k, v in self.violations(latency_ms, size_kb).items() if v > 0}
        if not broken:
            return None
        return "rejected before training: " + ", ".join(f"{k} exceeded by {v:.4g}" for k, v in broken.items())

    def bounds(self) -> dict[str, float]:
        """The constraints that are set, as trial column -> upper bound."""
        return {column: float(getattr(self, key)) for key, column in CONSTRAINED_COLUMNS.items()
                if getattr(self, key) is not None}


class TaskKind(str, enum.Enum):
    """What a run's trials are scored by: the space's data classified, or the user's own task
    (given through the Python API, frozen in the run folder)."""

    CLASSIFICATION = "classification"
    CUSTOM = "custom"


class SearchConfig(BaseModel):
    """Everything that defines a run; written once, read back on ``--resume``."""

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)

    run: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    space_path: str
    space: dict
    profile_path: str
    profile_device: str
    objectives: list[Objective]
    constraints: Constraints = Constraints()
    sampler: str
    trials: int | None = Field(None, ge=1)
    time_budget_s: float | None = Field(None, gt=0)
    workers: int = Field(2, ge=1)
    threads: int | None = Field(None, ge=1, description="per worker; None: cores / workers (local Ray), 1 (cluster)")
    gpus_per_worker: float = Field(0.0, ge=0, description="Ray GPUs per worker; > 0 trains trials on CUDA")
    seed: int = Field(0, ge=0, le=MAX_SEED)
    finetune_epochs: int | None = Field(None, ge=0)
    native_only: bool = False
    learn_from: list[str] = Field(default_factory=list, description=(
        "earlier run folders whose fine-tuned trials the predictor learns from (frozen in the run folder)"))
    sensitivity_baselines: bool = Field(False, description=(
        "whether the sensitivity-based allocator's candidates are among the baselines (absent, so false, in runs "
        "made before 2026-12-07)"))
    base_path: str
    split_images: dict[str, int] | None = Field(None, description=(
        "images in the train, val and test splits (absent in runs made before 2026-11-30)"))
    task: TaskKind = TaskKind.CLASSIFICATION
    metric: str = Field("accuracy", pattern=r"^[A-Za-z][A-Za-z0-9_@.%-]*$", description=(
        "the name of the task's score (higher is better), stored in the trial table's accuracy column"))
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def directions(self) -> list[str]:
        return ["maximize" if name == "accuracy" else "minimize" for name in self.objectives]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> SearchConfig:
        """A run's config file; a broken one is one line naming it."""
        return validated(cls, load_json(path, "run config"), path)
