"""Export one trial of a run as files to ship, and check them against the search's figures.

The folder holds ``weights.bin`` (tensors at their bit-widths: see ``weights.py``),
``candidate.json`` and ``space.yaml`` (from which the structure is rebuilt),
``model.onnx`` (float, runs in any ONNX runtime), ``model.int8.onnx`` (ONNX Runtime
static QDQ int8, when some layer is quantized) and ``export.json`` with the checks.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import onnxruntime as ort
import torch
import yaml
from torch import nn

from autocompress.candidate import Candidate
from autocompress.compress.freeze import freeze
from autocompress.errors import UserInputError
from autocompress.export.onnx_files import OnnxModule, onnx_predict, write_int8
from autocompress.export.weights import read_weights, write_weights
from autocompress.hw.bundle_runner import clock_name, open_session, session_runner, summarise, time_calls
from autocompress.hw.onnx_export import export_onnx
from autocompress.hw.runtimes import WARMUP_E2E, MeasuredRuntime, runtime_named
from autocompress.hw.runtimes.onnx import OnnxRuntime, OnnxRuntimeFloat
from autocompress.inputs import loading
from autocompress.pipeline import load_trial_model
from autocompress.progress import progress_bar
from autocompress.run.run import Run
from autocompress.run.trial import State, Trial
from autocompress.tasks import Split, Task
from autocompress.tasks.classification import ClassificationTask
from autocompress.train import predict

TIMED_CALLS = 200


@dataclass(frozen=True)
class Export:
    directory: str
    trial: int
    files: dict[str, int]
    weights_bytes: int
    reported_bytes: float
    metric: str
    """The run's score (accuracy for classification), which the next four fields hold."""
    search_accuracy: float
    accuracy: dict[str, float]
    search_test_accuracy: float | None
    test_accuracy: dict[str, float]
    agreement_with_search: float | None
    """Classification: share of validation images whose class the exported and the search-time model agree on."""
    onnx_agreement_with_torch: float | None
    runtime: str
    clock: str
    statistic: str
    device: str
    predicted_ms: float
    predicted_label: str
    measured_ms: float
    measured_spread_ms: float

    @property
    def size_ratio(self) -> float:
        return self.weights_bytes / self.reported_bytes


def search_model(run: Run, number: int) -> tuple[Candidate, nn.Module, Trial]:
    """The trial's fine-tuned model as the search saved it, and the trial."""
    trial = run.trial(number)
    if trial is None or trial.state is not State.COMPLETE:
        raise UserInputError(f"{run.path}: trial {number} is not a finished trial (see {run.files.trials.name})")
    path = run.model_path(trial)
    if not path.is_file():
        raise UserInputError(f"{path}: the trial's model was not saved")
    with loading(path, "trial model"):
        candidate, model = load_trial_model(run.space, path)
    return candidate, model, trial


def _write_structure(run: Run, candidate: Candidate, directory: Path) -> None:
    (directory / "candidate.json").write_text(candidate.to_json(indent=1) + "\n")
    (directory / "space.yaml").write_text(yaml.safe_dump(run.config.space, sort_keys=False))


def _latency(runtime: str, statistic: str, model: nn.Module, files: dict[str, Path], shape: tuple[int, ...],
             threads: int) -> tuple[str, float, float]:
    """Latency (ms per batch, the profile's ``statistic`` of the timed calls) and spread of the
    exported files on the profile's runtime, timed as the profiler times (same clock, threads
    and batch size).

    A modelled device cannot be measured here: its latency is reported on onnxruntime.
    """
    timed_on = runtime_named(runtime, "device.runtime")
    if not isinstance(timed_on, MeasuredRuntime):
        timed_on = runtime_named(OnnxRuntimeFloat.name)
    if isinstance(timed_on, OnnxRuntime):
        path = files.get("model.int8.onnx") if timed_on.quantized else None
        call = session_runner(open_session(path or files["model.onnx"], threads))
    else:
        call = timed_on.prepare(model, [shape], threads)
    time_calls(call, WARMUP_E2E, threads)
    stats = summarise(time_calls(call, TIMED_CALLS, threads))
    return timed_on.name, stats[f"{statistic}_ms"], stats["spread_ms"]


def _agreements(task: Task, model: nn.Module, searched: nn.Module,
                sessions: dict[str, ort.InferenceSession]) -> tuple[float | None, float | None]:
    """Share of validation images on which the exported torch model predicts the class the
    search-time model predicts, and model.onnx the class the frozen torch model predicts
    (None, None: the task is not classification, and its metric alone is compared)."""
    if not isinstance(task, ClassificationTask):
        return None, None
    x = task.splits.val_x
    exported = predict(model, x)
    with_search = float((exported == predict(searched, x)).float().mean())
    onnx_with_torch = float((onnx_predict(sessions["model.onnx"], x) == predict(freeze(model), x)).float().mean())
    return with_search, onnx_with_torch


def export_trial(run: Run, number: int, directory: Path | None = None) -> Export:
    """Write trial ``number`` of ``run`` into ``directory`` (default: ``RunFiles.export_folder``)."""
    candidate, searched, trial = search_model(run, number)
    space = run.space
    profile = run.profile
    device = profile.device if profile is not None else None
    shape = space.input_shape(device.batch_size if device else 1)
    task = run.task()
    calibration = torch.cat(task.calibration_batches())  # before the folder is made: missing data leave nothing
    directory = Path(directory or run.files.export_folder(number))
    directory.mkdir(parents=True, exist_ok=True)
    threads = device.threads if device else 1
    statistic = profile.statistic if profile is not None else "median"

    with progress_bar(total=5, desc=f"export trial {number}", unit="step") as bar:
        _write_structure(run, candidate, directory)
        weights_bytes = write_weights(searched, directory / "weights.bin")
        model = read_weights(space, candidate, directory / "weights.bin")
        bar.update()
        paths = {"model.onnx": export_onnx(model, shape, directory / "model.onnx")}
        bar.update()
        int8 = write_int8(model, paths["model.onnx"], directory / "model.int8.onnx", calibration)
        if int8 is not None:
            paths["model.int8.onnx"] = int8
        bar.update()
        sessions = {name: open_session(path, threads) for name, path in paths.items()}
        modules = {"weights.bin (torch)": model} | {name: OnnxModule(session) for name, session in sessions.items()}
        accuracy = {name: task.score(module, Split.VAL) for name, module in modules.items()}
        test_accuracy = {name: task.score(module, Split.TEST) for name, module in modules.items()}
        with_search, onnx_with_torch = _agreements(task, model, searched, sessions)
        bar.update()
        runtime, measured, spread = _latency(device.runtime if device else "torch-fp32", statistic, model, paths,
                                             shape, threads)
        bar.update()
    written = ["weights.bin", "candidate.json", "space.yaml", *paths]
    files = {name: (directory / name).stat().st_size for name in written}
    result = Export(
        directory=str(directory), trial=number, files=files, weights_bytes=weights_bytes,
        reported_bytes=float(trial.size_kb) * 1024, search_accuracy=float(trial.accuracy), accuracy=accuracy,
        search_test_accuracy=None if trial.test_accuracy is None else float(trial.test_accuracy),
        test_accuracy=test_accuracy,
        metric=task.metric, agreement_with_search=with_search, onnx_agreement_with_torch=onnx_with_torch,
        runtime=runtime, clock=clock_name(threads), statistic=statistic,
        device=f"{device.name} ({device.kind}, {device.runtime})" if device else "? (no profile in the run)",
        predicted_ms=float(trial.latency_ms), predicted_label=run.latency_label,
        measured_ms=measured, measured_spread_ms=spread,
    )
    (directory / "export.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
    return result
