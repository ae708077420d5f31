"""Export one trial of a run as files to ship, and check them against the search's figures.

The folder holds ``weights.bin`` (tensors at their bit-widths: see ``weights.py``),
``candidate.json`` and ``space.yaml`` (from which the structure is rebuilt),
``model.onnx`` (float, runs in any ONNX runtime), ``model.int8.onnx`` (ONNX Runtime
static QDQ int8, when some layer is quantized) and ``export.json`` with the checks.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from autocompress.candidate import Candidate
from autocompress.compress.freeze import freeze
from autocompress.data import load_splits
from autocompress.errors import UserInputError
from autocompress.export.onnx_files import onnx_predict, write_int8
from autocompress.export.weights import read_weights, write_weights
from autocompress.hw.bundle_runner import clock_name, open_session, session_runner, summarise, time_calls
from autocompress.hw.onnx_export import export_onnx
from autocompress.hw.runtimes import RUNTIMES, WARMUP_E2E, prepare
from autocompress.models.family import family_of
from autocompress.report.run import Run
from autocompress.train import predict

TIMED_CALLS = 200


@dataclass(frozen=True)
class Export:
    directory: str
    trial: int
    files: dict[str, int]
    weights_bytes: int
    reported_bytes: float
    search_accuracy: float
    accuracy: dict[str, float]
    agreement_with_search: float
    onnx_agreement_with_torch: float
    runtime: str
    clock: str
    statistic: str
    device: str
    predicted_ms: float
    measured_ms: float
    measured_spread_ms: float

    @property
    def size_ratio(self) -> float:
        return self.weights_bytes / self.reported_bytes


def search_model(run: Run, number: int) -> tuple[Candidate, nn.Module, float, float]:
    """The trial's fine-tuned model as the search saved it, its accuracy, size (bytes), latency."""
    row = run.trials[run.trials["number"] == number]
    if row.empty or row["state"].iloc[0] != "COMPLETE":
        raise UserInputError(f"{run.path}: trial {number} is not a finished trial (see trials.csv)")
    path = run.path / "models" / f"trial_{number}.pt"
    if not path.is_file():
        raise UserInputError(f"{path}: the trial's model was not saved")
    saved = torch.load(path, map_location="cpu", weights_only=True)
    candidate = family_of(run.space).parse_candidate(saved["candidate"])
    model = family_of(run.space).build_compressed(candidate)
    model.load_state_dict(saved["state_dict"])
    row = row.iloc[0]
    return candidate, model.eval(), float(row["accuracy"]), float(row["size_kb"]) * 1024, float(row["latency_ms"])


def _write_structure(run: Run, candidate: Candidate, directory: Path) -> None:
    (directory / "candidate.json").write_text(candidate.to_json(indent=1) + "\n")
    if (run.path / "space.yaml").is_file():
        shutil.copy(run.path / "space.yaml", directory / "space.yaml")
    else:
        (directory / "space.yaml").write_text(yaml.safe_dump(run.config["space"], sort_keys=False))


def _latency(runtime: str, statistic: str, model: nn.Module, files: dict[str, Path], shape: tuple[int, ...],
             threads: int) -> tuple[str, float, float]:
    """Latency (ms per batch, the profile's ``statistic`` of the timed calls) and spread of the
    exported files on the profile's runtime, timed as the profiler times (same clock, threads
    and batch size).

    A modelled device cannot be measured here: its latency is reported on onnxruntime.
    """
    runtime = runtime if runtime in RUNTIMES else "onnxruntime"
    if runtime == "torch-fp32":
        call = prepare(runtime, model, shape, threads)
    else:
        path = files.get("model.int8.onnx") if runtime == "onnxruntime-int8" else None
        call = session_runner(open_session(path or files["model.onnx"], threads), list(shape))
    time_calls(call, WARMUP_E2E, threads)
    stats = summarise(time_calls(call, TIMED_CALLS, threads))
    return runtime, stats[f"{statistic}_ms"], stats["spread_ms"]


def export_trial(run: Run, number: int, directory: Path | None = None) -> Export:
    """Write trial ``number`` of ``run`` into ``directory`` (default: <run>/export/trial_<n>)."""
    candidate, searched, search_accuracy, reported_bytes, predicted_ms = search_model(run, number)
    directory = Path(directory or run.path / "export" / f"trial_{number}")
    directory.mkdir(parents=True, exist_ok=True)
    space = run.space
    device = run.profile.get("device", {})
    shape = space.input_shape(int(device.get("batch_size", 1)))
    splits = load_splits(space.data)

    _write_structure(run, candidate, directory)
    weights_bytes = write_weights(searched, directory / "weights.bin")
    model = read_weights(space, candidate, directory / "weights.bin")
    paths = {"model.onnx": export_onnx(model, shape, directory / "model.onnx")}
    int8 = write_int8(model, paths["model.onnx"], directory / "model.int8.onnx", splits.train_x)
    if int8 is not None:
        paths["model.int8.onnx"] = int8

    threads = int(device.get("threads", 1))
    labels = splits.val_y
    exported = predict(model, splits.val_x)
    frozen = predict(freeze(model), splits.val_x)
    onnx_runs = {name: onnx_predict(open_session(path, threads), splits.val_x) for name, path in paths.items()}
    accuracy = {"weights.bin (torch)": float((exported == labels).float().mean()),
                **{name: float((p == labels).float().mean()) for name, p in onnx_runs.items()}}
    statistic = str(run.profile.get("statistic", "median"))
    runtime, measured, spread = _latency(str(device.get("runtime", "torch-fp32")), statistic, model, paths, shape,
                                         threads)
    written = ["weights.bin", "candidate.json", "space.yaml", *paths]
    files = {name: (directory / name).stat().st_size for name in written}
    result = Export(
        directory=str(directory), trial=number, files=files, weights_bytes=weights_bytes,
        reported_bytes=reported_bytes, search_accuracy=search_accuracy, accuracy=accuracy,
        agreement_with_search=float((exported == predict(searched, splits.val_x)).float().mean()),
        onnx_agreement_with_torch=float((onnx_runs["model.onnx"] == frozen).float().mean()),
        runtime=runtime, clock=clock_name(threads), statistic=statistic,
        device=f"{device.get('name', '?')} ({device.get('kind', '?')}, {device.get('runtime', '?')})",
        predicted_ms=predicted_ms, measured_ms=measured, measured_spread_ms=spread,
    )
    (directory / "export.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result
