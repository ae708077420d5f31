"""Settings of one search run, frozen into ``results/<run>/config.json``."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from autocompress.errors import UserInputError
from autocompress.inputs import load_json, validated

SAMPLERS = ("predictor", "nsga2", "nsga3", "tpe", "random", "gp")
Objective = Literal["accuracy", "latency_ms", "size_kb"]
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""What ``--run`` accepts: one folder directly under the results folder, so no separator,
no ``..``, and no leading '_' (``_base`` holds the base networks) or '.'."""
MAX_SEED = 2**32 - 1
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """Seconds in ``8h``, ``1h30m``, ``90m``, ``45s`` or a plain number of seconds."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise UserInputError(f"--time-budget: cannot read {text!r} (use e.g. 8h, 1h30m, 90m, 600s)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise UserInputError(f"--time-budget: {text!r} leaves no time; give a positive duration (e.g. 8h)")
    return total


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
        "earlier run folders whose fine-tuned trials the predictor learns from (frozen in prior_trials.csv)"))
    base_path: str
    split_images: dict[str, int] | None = Field(None, description=(
        "images in the train, val and test splits (absent in runs made before 2026-11-30)"))
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def directions(self) -> list[str]:
        return ["maximize" if name == "accuracy" else "minimize" for name in self.objectives]

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(), indent=2) + "\n")

    @classmethod
    def read(cls, path: Path) -> SearchConfig:
        """The run's config.json; a broken one is one line naming it."""
        return validated(cls, load_json(path, "run config"), path)
