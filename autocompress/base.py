"""The trained base network of a search space: trained once, reused by every trial."""

from __future__ import annotations

import functools
import hashlib
import json
import random
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from autocompress.data import Splits
from autocompress.models.family import ModelFamily, family_of
from autocompress.models.slicing import load_state
from autocompress.progress import announce
from autocompress.space import SearchSpace
from autocompress.tasks import Split, Task
from autocompress.train import distillation_loss, run_epochs, seed_everything

DEFAULT_BASE_DIR = Path("results") / "_base"
SHIPPED_BASE_DIR = Path(__file__).parent / "weights"
"""Trained bases shipped with the package (the demo space's), named as in ``DEFAULT_BASE_DIR``:
a space whose fingerprint matches one starts from it instead of training. Made by
``autocompress train-base search_spaces/mobilenet_digits.yaml --force --base-dir autocompress/weights``;
``tests/test_shipped_base.py`` checks that it is still what that command makes."""
SUBNETS_CACHED = 16
"""Subnet architectures whose (storage-free) module trees supernet training keeps."""


def space_fingerprint(space: SearchSpace) -> str:
    """Digest of what determines the base network's weights (network, data, training)."""
    relevant = {"network": space.network.model_dump(), "data": space.data.model_dump(exclude={"loader_workers"}),
                "training": space.training.model_dump(), "max": family_of(space).fingerprint()}
    return hashlib.sha256(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:12]


def base_path(space: SearchSpace, directory: Path = DEFAULT_BASE_DIR) -> Path:
    return Path(directory) / f"{space.name}-{space_fingerprint(space)}.pt"


@functools.lru_cache(maxsize=SUBNETS_CACHED)
def _meta_subnet(family: ModelFamily, arch: tuple) -> nn.Module:
    """The module tree of ``arch``'s network on the meta device (no storage): ``functional_call``
    runs it on the tensors it is given, so one tree serves every step that samples ``arch``
    (the smallest subnet is trained at every step)."""
    with torch.device("meta"):
        return family.build(list(arch))


def subnet_logits(space: SearchSpace, arch: Sequence, base: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Logits of the subnet ``arch`` running on tensors inherited from ``base``, so that its
    gradients land on the base's weights. Its batch norms update copies of the base's
    statistics, which keep describing the largest network."""
    family = family_of(space)
    subnet = _meta_subnet(family, tuple(arch))
    state = family.inherited_state(subnet, base)
    for name, _ in subnet.named_buffers():
        state[name] = state[name].clone()
    return functional_call(subnet, state, (x,))


def train_supernet(model: nn.Module, space: SearchSpace, splits: Splits, seed: int = 0,
                   progress: str | None = None, stop_after_epochs: int | None = None) -> list[float]:
    """Train the largest network so that its subnets inherit good weights (sandwich rule);
    returns each step's loss. ``stop_after_epochs`` ends the training after that many epochs
    of its full schedule (the shipped base's reproduction test).

    Each step trains the largest network on the labels and ``subnets_per_step`` subnets
    (the smallest, then random ones) by distillation from its logits (BigNAS's in-place
    distillation), every subnet taking its weights from the largest one exactly as a
    trial's inheritance will. Without it, a search trial's small architecture starts near
    chance and a short fine-tune cannot make up for it.

    It runs in channels-last memory format, where oneDNN's depthwise and 1x1 convolutions of
    small images are faster on a CPU: the same computation but for float rounding (the
    weights are back in the default format after; docs/decisions.md).
    """
    settings = space.training
    generator = seed_everything(seed)
    rng = random.Random(seed)
    family = family_of(space)
    smallest = family.smallest_arch()
    subnets = settings.subnets_per_step if family.arch_knobs() else 0  # a family without choices has no subnets
    losses: list[torch.Tensor] = []

    def loss_fn(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.contiguous(memory_format=torch.channels_last)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        for index in range(subnets):
            arch = smallest if index == 0 else family.random_arch(rng)
            loss = loss + distillation_loss(subnet_logits(space, arch, model, x), logits.detach(), y,
                                            settings.distill_temperature, settings.distill_alpha)
        losses.append(loss.detach())
        return loss, logits

    after_epoch = None if stop_after_epochs is None else (lambda epoch: epoch < stop_after_epochs)
    model.to(memory_format=torch.channels_last)
    try:
        run_epochs(model, splits, settings.base_epochs, settings, generator, loss_fn, settings.lr, progress,
                   after_epoch=after_epoch)
    finally:
        model.to(memory_format=torch.contiguous_format)
    return [float(loss) for loss in losses]


def build_base(space: SearchSpace) -> nn.Module:
    """The base network of ``space``: its family's largest architecture, fresh weights."""
    family = family_of(space)
    return family.build(family.largest_arch())


def initial_base(space: SearchSpace, seed: int, device: str = "cpu") -> nn.Module:
    """The base network before training, its initial weights drawn from ``seed`` (not from
    whatever ran before)."""
    seed_everything(seed)
    return build_base(space).to(device)


def train_base(space: SearchSpace, task: Task, path: Path, seed: int = 0,
               device: str = "cpu") -> tuple[nn.Module, dict]:
    """Train the largest network of ``space`` for ``task`` on ``device`` (or take the weights its
    family is given) and save it (on the CPU) with its validation score, training time and each
    step's loss (where the task's training records them); progress is shown while it trains."""
    model = initial_base(space, seed, device)
    start = time.perf_counter()
    given = family_of(space).base_weights()
    step_losses: list[float] = []
    if given is None:
        step_losses = task.train_base(model, space, seed, progress="base network")
    else:
        load_state(model, given)
    info = {"accuracy": task.score(model, Split.VAL),
            "train_seconds": time.perf_counter() - start, "seed": seed, "device": device,
            "fingerprint": space_fingerprint(space), "step_losses": step_losses}
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


def ensure_base(space: SearchSpace, task: Task, directory: Path = DEFAULT_BASE_DIR,
                device: str = "cpu") -> tuple[nn.Module, dict]:
    """The saved base network of ``space``: the one in ``directory``, else a copy of the one
    shipped for it (``SHIPPED_BASE_DIR``), else trained first (on ``device``)."""
    path = base_path(space, directory)
    shipped = base_path(space, SHIPPED_BASE_DIR)
    if not path.is_file() and shipped.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        shutil.copyfile(shipped, tmp)
        tmp.replace(path)
        announce(f"base network: the one shipped for {space.name} ({shipped.name}), not trained again")
    if path.is_file():
        return load_base(space, path)
    return train_base(space, task, path, device=device)
