"""The trained base network of a search space: trained once, reused by every trial."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch

from autocompress.data import Splits
from autocompress.models.mobilenet import MobileNet, largest_arch
from autocompress.space import SearchSpace
from autocompress.train import accuracy, train

DEFAULT_BASE_DIR = Path("results") / "_base"


def space_fingerprint(space: SearchSpace) -> str:
    """Digest of what determines the base network's weights (network, data, training)."""
    relevant = {"network": space.network.model_dump(), "data": space.data.model_dump(),
                "training": space.training.model_dump(), "max": space.choices.block.model_dump()}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def base_path(space: SearchSpace, directory: Path = DEFAULT_BASE_DIR) -> Path:
    return Path(directory) / f"{space.name}-{space_fingerprint(space)}.pt"


def train_base(space: SearchSpace, splits: Splits, path: Path, seed: int = 0) -> tuple[MobileNet, dict]:
    """Train the largest network of ``space`` and save it with its accuracy and time."""
    model = MobileNet(space, largest_arch(space))
    start = time.perf_counter()
    train(model, splits, space.training.base_epochs, space.training, seed=seed)
    info = {"accuracy": accuracy(model, splits.val_x, splits.val_y),
            "train_seconds": time.perf_counter() - start, "seed": seed,
            "fingerprint": space_fingerprint(space)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": model.state_dict(), "info": info}, tmp)
    tmp.replace(path)
    return model, info


def load_base(space: SearchSpace, path: Path) -> tuple[MobileNet, dict]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = MobileNet(space, largest_arch(space))
    model.load_state_dict(saved["state_dict"])
    return model.eval(), saved["info"]


def ensure_base(space: SearchSpace, splits: Splits, directory: Path = DEFAULT_BASE_DIR) -> tuple[MobileNet, dict]:
    """The saved base network of ``space``, trained first if there is none."""
    path = base_path(space, directory)
    if path.is_file():
        return load_base(space, path)
    return train_base(space, splits, path)
