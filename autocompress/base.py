"""The trained base network of a search space: trained once, reused by every trial."""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from autocompress.data import Splits
from autocompress.models.family import family_of
from autocompress.models.slicing import load_state
from autocompress.space import SearchSpace
from autocompress.train import accuracy, distillation_loss, run_epochs, seed_everything

DEFAULT_BASE_DIR = Path("results") / "_base"


def space_fingerprint(space: SearchSpace) -> str:
    """Digest of what determines the base network's weights (network, data, training)."""
    relevant = {"network": space.network.model_dump(), "data": space.data.model_dump(exclude={"loader_workers"}),
                "training": space.training.model_dump(), "max": family_of(space).fingerprint()}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def base_path(space: SearchSpace, directory: Path = DEFAULT_BASE_DIR) -> Path:
    return Path(directory) / f"{space.name}-{space_fingerprint(space)}.pt"


def subnet_logits(space: SearchSpace, arch: list, base: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of the subnet ``arch`` running on tensors inherited from ``base``, so that its
    gradients land on the base's weights. Its batch norms update copies of the base's
    statistics, which keep describing the largest network."""
    family = family_of(space)
    with torch.device("meta"):
        subnet = family.build(arch)
    state = family.inherited_state(subnet, base)
    for name, _ in subnet.named_buffers():
        state[name] = state[name].clone()
    return functional_call(subnet, state, (x,))


def train_supernet(model: nn.Module, space: SearchSpace, splits: Splits, seed: int = 0,
                   progress: str | None = None) -> nn.Module:
    """Train the largest network so that its subnets inherit good weights (sandwich rule).

    Each step trains the largest network on the labels and ``subnets_per_step`` subnets
    (the smallest, then random ones) by distillation from its logits (BigNAS's in-place
    distillation), every subnet taking its weights from the largest one exactly as a
    trial's inheritance will. Without it, a search trial's small architecture starts near
    chance and a short fine-tune cannot make up for it.
    """
    settings = space.training
    generator = seed_everything(seed)
    rng = random.Random(seed)
    family = family_of(space)
    smallest = family.smallest_arch()
    subnets = settings.subnets_per_step if family.arch_knobs() else 0  # a family without choices has no subnets

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        for index in range(subnets):
            arch = smallest if index == 0 else family.random_arch(rng)
            loss = loss + distillation_loss(subnet_logits(space, arch, model, x), logits.detach(), y,
                                            settings.distill_temperature, settings.distill_alpha)
        return loss, logits

    run_epochs(model, splits, settings.base_epochs, settings, generator, loss_fn, settings.lr, progress)
    return model


def build_base(space: SearchSpace) -> nn.Module:
    """The base network of ``space``: its family's largest architecture, fresh weights."""
    family = family_of(space)
    return family.build(family.largest_arch())


def train_base(space: SearchSpace, splits: Splits, path: Path, seed: int = 0,
               device: str = "cpu") -> tuple[nn.Module, dict]:
    """Train the largest network of ``space`` as a supernet on ``device`` (or take the weights
    its family is given) and save it (on the CPU) with its validation accuracy and training
    time; a progress bar shows where the training is."""
    seed_everything(seed)  # the initial weights too come from ``seed``, not from whatever ran before
    model = build_base(space).to(device)
    start = time.perf_counter()
    given = family_of(space).base_weights()
    if given is None:
        train_supernet(model, space, splits, seed, progress=f"base network ({device})")
    else:
        load_state(model, given)
    info = {"accuracy": accuracy(model, splits.val_x, splits.val_y),
            "train_seconds": time.perf_counter() - start, "seed": seed, "device": device,
            "fingerprint": space_fingerprint(space)}
    model.cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"state_dict": model.state_dict(), "info": info}, tmp)
    tmp.replace(path)
    return model, info


def load_base(space: SearchSpace, path: Path) -> tuple[nn.Module, dict]:
    saved = torch.load(path, map_location="cpu", weights_only=True)
    model = build_base(space)
    load_state(model, saved["state_dict"])
    return model.eval(), saved["info"]


def ensure_base(space: SearchSpace, splits: Splits, directory: Path = DEFAULT_BASE_DIR,
                device: str = "cpu") -> tuple[nn.Module, dict]:
    """The saved base network of ``space``, trained first (on ``device``) if there is none."""
    path = base_path(space, directory)
    if path.is_file():
        return load_base(space, path)
    return train_base(space, splits, path, device=device)
