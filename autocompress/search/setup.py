"""Creating a run folder (frozen config, copies of the inputs, the base network) or reopening one."""

from __future__ import annotations

import shutil
from datetime import datetime, timezone
from pathlib import Path

import yaml

from autocompress.base import base_path, ensure_base
from autocompress.candidate import uniform_candidate
from autocompress.data import load_splits
from autocompress.devices import worker_device
from autocompress.errors import UserInputError
from autocompress.hw.predict import predict
from autocompress.hw.profile import HardwareProfile, load_profile
from autocompress.models.mobilenet import largest_arch
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


def create_run(folder: RunFolder, space_path: Path, profile_path: Path, settings: dict) -> SearchConfig:
    """Validate the inputs, copy them and the base network into ``folder``, freeze the config.

    ``settings`` holds the remaining ``SearchConfig`` fields (run, objectives, sampler, ...).
    config.json is written last: a folder without it is an unfinished setup, started over.
    """
    if folder.config.exists():
        raise UserInputError(f"{folder.path}: run already exists; add --resume to continue it, "
                             "or pick another --run name")
    space = load_space(space_path)
    profile = load_profile(profile_path)
    predict(uniform_candidate(space, largest_arch(space)), profile, space)  # a profile that misses ops fails here
    splits = load_splits(space.data, progress=True)  # bad data fail here, before the folder is filled
    folder.path.mkdir(parents=True, exist_ok=True)
    if settings.get("native_only"):
        space = restrict_to_native(space, profile, space_path)
        folder.space.write_text(yaml.safe_dump(space.model_dump(), sort_keys=False))
    else:
        shutil.copyfile(space_path, folder.space)
    shutil.copyfile(profile_path, folder.profile)
    base_dir = folder.path.parent / "_base"
    ensure_base(space, splits, base_dir, worker_device(settings.get("gpus_per_worker", 0.0)))
    shutil.copyfile(base_path(space, base_dir), folder.base)
    config = SearchConfig(space_path=str(space_path), space=space.model_dump(), profile_path=str(profile_path),
                          profile_device=profile.device.name, base_path=str(folder.base), **settings)
    config.write(folder.config)
    return config


def open_run(folder: RunFolder) -> tuple[SearchConfig, SearchSpace, HardwareProfile]:
    """The frozen config and the copied inputs of an existing run."""
    config = SearchConfig.read(folder.config)
    return config, load_space(folder.space), load_profile(folder.profile)
