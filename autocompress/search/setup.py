"""Checking, creating and reopening a run folder (frozen config, copies of the inputs, the base).

Everything a new run needs is checked by ``plan_run`` before anything is written; then
``create_run`` writes it, its config last, and takes back what it wrote if it fails, so a
folder is either a complete run or not there.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from autocompress.base import base_path, ensure_base, load_base
from autocompress.devices import worker_device
from autocompress.errors import UserInputError
from autocompress.hw.predict import check_covers
from autocompress.hw.profile import HardwareProfile, load_profile
from autocompress.inputs import loading
from autocompress.models.space_file import load_space
from autocompress.models.torch_model import TorchModelSpace
from autocompress.run.config import SearchConfig
from autocompress.run.files import RunFiles
from autocompress.run.run import Run, task_kind
from autocompress.search.prior import PriorTrials, collect, read_prior
from autocompress.space import SearchSpace
from autocompress.tasks import Task
from autocompress.tasks.classification import ClassificationTask


def default_run_name(space: SearchSpace) -> str:
    return f"{space.name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S')}"


def restrict_to_native(space: SearchSpace, profile: HardwareProfile, origin: Path) -> SearchSpace:
    """The space with only the bit-widths and sparsity kinds the device runs natively.

    Float (32 bits) always stays; a layer knob the device has no kernel for would shrink
    the file but never the latency, so a search for speed can leave it out.
    """
    layer = space.choices.layer
    weight_bits = [b for b in layer.weight_bits if b == 32 or b in profile.native_weight_bits]
    activation_bits = [b for b in layer.activation_bits if b == 32 or b in profile.native_activation_bits]
    kinds = [k for k in layer.sparsity_kind if k in profile.native_sparsity]
    if not weight_bits or not activation_bits:
        raise UserInputError(f"{origin}: --native-only leaves no bit-width: the space offers none of "
                             f"{profile.native_weight_bits} and no 32")
    restricted = layer.model_copy(update={
        "weight_bits": weight_bits, "activation_bits": activation_bits,
        "sparsity_kind": kinds or list(layer.sparsity_kind), "sparsity": layer.sparsity if kinds else [0.0]})
    return space.model_copy(update={"choices": space.choices.model_copy(update={"layer": restricted})})


def _not_a_run_yet(path: Path) -> None:
    if Run.exists(path):
        raise UserInputError(f"{path}: run already exists; add --resume to continue it, "
                             "or pick another --run name")


@dataclass(frozen=True)
class NewRun:
    """A run whose inputs are all checked; nothing of it is written yet."""

    path: Path
    config: SearchConfig
    space: SearchSpace
    profile: HardwareProfile
    profile_path: Path
    task: Task
    prior: PriorTrials | None
    """Earlier runs' trials to learn from (``--learn-from``), or None."""


def plan_run(results_dir: Path, run: str | None, space_path: Path, profile_path: Path,
             settings: dict, task: Task | None = None, model: object | None = None) -> NewRun:
    """Check a new run's space, profile (every op the space can contain) and data.

    ``settings`` holds the remaining ``SearchConfig`` fields (objectives, sampler, ...);
    ``learn_from``, the earlier runs to learn from, are read here too. ``task`` is the user's
    own (the Python API); by default, classification of the space's data. ``model``: the
    network the Python API was given, for a ``torch-model`` space that names none.
    """
    space = load_space(space_path)
    if model is not None:
        if not isinstance(space, TorchModelSpace):
            raise UserInputError(f"{space_path}: model= needs network.family: torch-model, not {space.network.family}")
        space = space.with_model(model)
    path = results_dir / (run or default_run_name(space))
    _not_a_run_yet(path)
    profile = load_profile(profile_path)
    if settings.get("native_only"):
        space = restrict_to_native(space, profile, space_path)
    check_covers(profile, space, profile_path)
    if task is None:
        task = ClassificationTask(space, progress=True)
    split_sizes = task.split_sizes()  # bad data fail here, before anything is written
    learn_from = [Path(p) for p in settings.get("learn_from") or []]
    epochs = settings.get("finetune_epochs")
    prior = collect(learn_from, space, profile, base_path(space, path.parent / "_base"),
                    space.training.finetune_epochs if epochs is None else epochs) if learn_from else None
    config = SearchConfig(run=path.name, space_path=str(space_path), space=space.model_dump(),
                          profile_path=str(profile_path), profile_device=profile.device.name,
                          base_path=str(RunFiles(path).base), split_images=split_sizes, metric=task.metric,
                          task=task_kind(task), **settings)
    return NewRun(path, config, space, profile, profile_path, task, prior)


def given_model(space: SearchSpace) -> object | None:
    """The model object the Python API gave the space (None: the space names its model)."""
    return space._model if isinstance(space, TorchModelSpace) else None


def create_run(plan: NewRun, fresh: bool) -> Run:
    """The planned run, written: the profile, the base network (trained first if needed), the
    earlier runs' trials, and the frozen config last (``Run.create``, which takes back what it
    wrote if anything fails; the whole folder if it is ``fresh``)."""
    _not_a_run_yet(plan.path)  # again, under the lock: another driver may have made it meanwhile
    base_dir = plan.path.parent / "_base"

    def write_base(target: Path) -> None:
        ensure_base(plan.space, plan.task, base_dir, worker_device(plan.config.gpus_per_worker))
        shutil.copyfile(base_path(plan.space, base_dir), target)

    return Run.create(plan.path, plan.config, plan.profile_path, write_base,
                      None if plan.prior is None else plan.prior.write, fresh,
                      None if isinstance(plan.task, ClassificationTask) else plan.task, given_model(plan.space))


def check_base(space: SearchSpace, path: Path) -> None:
    """Fail with one line unless ``path`` holds a base network of ``space``."""
    if not path.is_file():
        raise UserInputError(f"{path}: base network missing from the run folder")
    with loading(path, "base network of this run's space"):
        load_base(space, path)


def open_run(path: Path, task: Task | None = None) -> tuple[Run, HardwareProfile, Task, PriorTrials | None]:
    """An existing run, its device profile, its task (see ``Run.task``) and the earlier runs'
    trials (if it learns from any), every file checked."""
    if not Run.exists(path):
        raise UserInputError(f"{path}: no such run to resume ({RunFiles(path).config.name} missing)")
    run = Run.open(path)
    profile = load_profile(run.files.profile)
    check_base(run.space, run.files.base)
    prior = read_prior(run)
    run.files.check_storage()
    run.test_accuracy()  # the test figures so far, if any
    return run, profile, run.task(task), prior
