"""Where training runs: the CPU by default, a CUDA GPU when the user asks for one.

Both checks run before anything is created, so a GPU asked of a machine without one is
one line and exit status 2, not a run folder whose trials all fail.
"""

from __future__ import annotations

import math

import torch

from autocompress.errors import UserInputError

DEVICES = ("cpu", "cuda")


def training_device(name: str, option: str = "--device") -> str:
    """``name`` ("cpu" or "cuda") if this machine can train on it."""
    if name not in DEVICES:
        raise UserInputError(f"{option}: unknown device {name!r} (allowed: {', '.join(DEVICES)})")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"{option} cuda: this machine has no CUDA GPU that torch can use "
                             f"(torch {torch.__version__}, torch.cuda.is_available() is False)")
    return name


def check_gpus_per_worker(gpus: float, address: str | None) -> float:
    """``gpus`` (Ray's ``num_gpus`` of each worker) if Ray can grant it.

    A share below 1 lets workers share a GPU; above 1 it must be whole (Ray's rule). On a
    local Ray the GPUs are this machine's; on a cluster (``address``) Ray counts them.
    """
    if not (math.isfinite(gpus) and gpus >= 0):  # NaN and inf too
        raise UserInputError(f"--gpus-per-worker: must be a finite number, 0 or more (got {gpus:g})")
    if gpus > 1 and gpus != int(gpus):
        raise UserInputError(f"--gpus-per-worker: above 1 it must be a whole number of GPUs (got {gpus:g})")
    if gpus > 0 and address is None:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UserInputError(f"--gpus-per-worker {gpus:g}: this machine has no CUDA GPU that torch can use "
                                 "(torch.cuda.is_available() is False); drop the option to search on the CPU")
        if gpus > count:
            raise UserInputError(f"--gpus-per-worker {gpus:g}: this machine has {count} GPU(s)")
    return gpus


def worker_device(gpus: float) -> str:
    """The torch device of a worker holding ``gpus`` of Ray's GPU resources."""
    return "cuda" if gpus > 0 else "cpu"
