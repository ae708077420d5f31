"""Measure a LUT: every op signature of a space, timed on a runtime, resumable.

Each signature becomes a small torch module with exactly that kernel (a conv with its batch
norm and ReLU, a squeeze-excite gate, ...), prepared on the runtime like a whole network
would be, warmed up and timed. Finished measurements go to a side file next to the output
after every op, written atomically, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from autocompress.hw.bundle_runner import summarise, time_calls
from autocompress.hw.profile import Entry, write_json_atomic
from autocompress.hw.runtimes import prepare
from autocompress.hw.signatures import BIAS, BN_RELU, NONE, OpSignature
from autocompress.models.blocks import ConvBNAct, SqueezeExcite

WARMUP = 5
REPEATS = 40


class _Add(nn.Module):
    """A residual add of two same-shaped tensors (here the input with itself)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + x


class _Pool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def op_module(signature: OpSignature) -> nn.Module:
    """A module that runs exactly the kernel of ``signature`` (random weights)."""
    s = signature
    if s.op == "conv":
        if s.epilogue == NONE:
            return nn.Conv2d(s.shape[0], s.out, s.kernel, s.stride, s.kernel // 2,
                             groups=s.groups, bias=False)
        return ConvBNAct(s.shape[0], s.out, s.kernel, s.stride, s.groups, act=s.epilogue == BN_RELU)
    if s.op == "linear":
        return nn.Linear(s.shape[0], s.out, bias=s.epilogue == BIAS)
    if s.op == "se":
        return SqueezeExcite(s.shape[0], s.out)
    if s.op == "add":
        return _Add()
    if s.op == "pool":
        return _Pool()
    raise ValueError(f"unknown op type in signature {s.key}")


def measure_op(runtime: str, signature: OpSignature, batch_size: int, threads: int,
               repeats: int = REPEATS) -> Entry:
    """Median, IQR and sample count of one op signature on ``runtime``."""
    module = op_module(signature).eval()
    run = prepare(runtime, module, (batch_size, *signature.shape), threads,
                  int8=None if signature.quantized else set())
    time_calls(run, WARMUP, threads)
    median, spread, count = summarise(time_calls(run, repeats, threads))
    return Entry(median_ms=median, spread_ms=spread, samples=count)


def partial_path(out: Path) -> Path:
    """Side file holding the measurements of an unfinished profile run."""
    return out.with_name(out.name + ".partial")


def load_partial(out: Path, settings: dict) -> dict[str, Entry]:
    """Entries measured by an interrupted run with the same settings (else none)."""
    path = partial_path(out)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text())
    if data.get("settings") != settings:
        return {}
    return {key: Entry(**value) for key, value in data["entries"].items()}


def measure_table(runtime: str, signatures: Iterable[OpSignature], out: Path, settings: dict,
                  known: dict[str, Entry]) -> dict[str, Entry]:
    """Measure every signature not in ``known`` (or the side file), saving as it goes."""
    entries = {**known, **load_partial(out, settings)}
    todo = [s for s in signatures if s.key not in entries]
    for signature in tqdm(todo, desc=f"ops on {runtime}", unit="op"):
        entries[signature.key] = measure_op(runtime, signature, settings["batch_size"],
                                            settings["threads"])
        write_json_atomic(partial_path(out), {
            "settings": settings,
            "entries": {k: e.model_dump() for k, e in entries.items()},
        })
    return entries
