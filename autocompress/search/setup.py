"""Checking, creating and reopening a run folder (frozen config, copies of the inputs, the base).

Everything a new run needs is checked by ``plan_run`` before anything is written; then
``create_run`` writes it, config.json last, and takes back what it wrote if it fails, so a
folder is either a complete run or not there.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import yaml

from autocompress.base import base_path, ensure_base, load_base
from autocompress.data import Splits, load_splits
from autocompress.devices import worker_device
from autocompress.errors import UserInputError
from autocompress.hw.predict import check_covers
from autocompress.hw.profile import HardwareProfile, load_profile
from autocompress.inputs import loading
from autocompress.search.prior import PriorTrials, collect, read_prior
from autocompress.search.rundir import RunFolder
from autocompress.search.settings import SearchConfig
from autocompress.space import SearchSpace, load_space


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


def _not_a_run_yet(folder: RunFolder) -> None:
    if folder.config.exists():
        raise UserInputError(f"{folder.path}: run already exists; add --resume to continue it, "
                             "or pick another --run name")


@dataclass(frozen=True)
class NewRun:
    """A run whose inputs are all checked; nothing of it is written yet."""

    folder: RunFolder
    config: SearchConfig
    space: SearchSpace
    profile: HardwareProfile
    space_path: Path
    profile_path: Path
    splits: Splits
    prior: PriorTrials | None
    """Earlier runs' trials to learn from (``--learn-from``), or None."""


def plan_run(results_dir: Path, run: str | None, space_path: Path, profile_path: Path,
             settings: dict) -> NewRun:
    """Check a new run's space, profile (every op the space can contain) and data.

    ``settings`` holds the remaining ``SearchConfig`` fields (objectives, sampler, ...);
    ``learn_from``, the earlier runs to learn from, are read here too.
    """
    space = load_space(space_path)
    folder = RunFolder(results_dir / (run or default_run_name(space)))
    _not_a_run_yet(folder)
    profile = load_profile(profile_path)
    if settings.get("native_only"):
        space = restrict_to_native(space, profile, space_path)
    check_covers(profile, space, profile_path)
    splits = load_splits(space.data, progress=True)  # bad data fail here, before anything is written
    learn_from = [Path(p) for p in settings.get("learn_from") or []]
    epochs = settings.get("finetune_epochs")
    prior = collect(learn_from, space, profile, base_path(space, folder.path.parent / "_base"),
                    space.training.finetune_epochs if epochs is None else epochs) if learn_from else None
    config = SearchConfig(run=folder.path.name, space_path=str(space_path), space=space.model_dump(),
                          profile_path=str(profile_path), profile_device=profile.device.name,
                          base_path=str(folder.base), split_images=splits.image_counts(), **settings)
    return NewRun(folder, config, space, profile, space_path, profile_path, splits, prior)


def create_run(plan: NewRun, fresh: bool) -> None:
    """Copy the inputs and the base network (trained first if needed) into the run folder, then
    freeze config.json. On any failure, Ctrl-C included, what was written is removed again:
    the whole folder if it is ``fresh`` (made for this run), else the copies."""
    folder = plan.folder
    _not_a_run_yet(folder)  # again, under the lock: another driver may have made it meanwhile
    try:
        if plan.config.native_only:
            folder.space.write_text(yaml.safe_dump(plan.space.model_dump(), sort_keys=False))
        else:
            shutil.copyfile(plan.space_path, folder.space)
        shutil.copyfile(plan.profile_path, folder.profile)
        base_dir = folder.path.parent / "_base"
        ensure_base(plan.space, plan.splits, base_dir, worker_device(plan.config.gpus_per_worker))
        shutil.copyfile(base_path(plan.space, base_dir), folder.base)
        if plan.prior is not None:
            plan.prior.write(folder.prior_trials)
        plan.config.write(folder.config)
    except BaseException:
        if fresh:
            shutil.rmtree(folder.path, ignore_errors=True)
        else:
            for path in (folder.config, folder.space, folder.profile, folder.base, folder.prior_trials):
                path.unlink(missing_ok=True)
        raise


def check_base(space: SearchSpace, path: Path) -> None:
    """Fail with one line unless ``path`` holds a base network of ``space``."""
    if not path.is_file():
        raise UserInputError(f"{path}: base network missing from the run folder")
    with loading(path, "base network of this run's space"):
        load_base(space, path)


def open_run(folder: RunFolder) -> tuple[SearchConfig, SearchSpace, HardwareProfile, PriorTrials | None]:
    """The frozen config, the copied inputs and the earlier runs' trials (if it learns from
    any) of an existing run, every file checked."""
    if not folder.config.is_file():
        raise UserInputError(f"{folder.path}: no such run to resume (config.json missing)")
    config = SearchConfig.read(folder.config)
    space, profile = load_space(folder.space), load_profile(folder.profile)
    check_base(space, folder.base)
    prior = read_prior(folder, config, space)
    folder.check_storage()
    folder.read_test_accuracy()  # the front's test figures so far, if any
    return config, space, profile, prior
