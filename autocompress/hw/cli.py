"""``autocompress profile``: measure (or model) a device for a space and validate its LUT."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from autocompress.errors import UserInputError
from autocompress.hw.profile import DEVICE_NAME, HardwareProfile, save_profile
from autocompress.hw.runtimes import runtime_named, runtime_names

if TYPE_CHECKING:
    from autocompress.space import SearchSpace

MIN_VALIDATE = 5


def _print_prediction(profile: HardwareProfile) -> None:
    """What the profile predicts, the settings it holds for, and its validation figures."""
    from autocompress.hw.describe import deployment_line, prediction_line, validation_rows

    typer.echo(prediction_line(profile))
    typer.echo(deployment_line(profile))
    heading = None
    for row in validation_rows(profile):
        if row["candidates"] != heading:
            heading = row["candidates"]
            typer.echo(f"validation on {heading}, measured end to end "
                       f"(FLOPs alone: Kendall tau {row['FLOPs tau']:.3f}):")
        typer.echo(f"  {row['statistic']:6s} {row['prediction']:11s}  MAPE {row['MAPE %']:5.1f}%  "
                   f"within +-10% {row['within +-10 %']:5.1f}%  Kendall tau {row['Kendall tau']:.3f}")


@dataclass(frozen=True)
class ProfileRequest:
    """A profile to make, every option checked."""

    space: SearchSpace
    origin: Path
    runtime: str
    device: str
    out: Path
    validate: int
    threads: int
    batch_size: int
    statistic: str


def checked_request(space: Path, runtime: str, device: str | None, out: Path | None, validate: int, threads: int,
                    batch_size: int, statistic: str, export_bundle: Path | None = None,
                    model: object | None = None) -> ProfileRequest:
    """The options of ``autocompress profile`` (and ``autocompress.profile``), checked; ``model``:
    the network of a ``torch-model`` space given as an object (the Python API)."""
    from autocompress.models.space_file import load_space

    search_space = load_space(space)
    if model is not None:
        from autocompress.models.torch_model import TorchModelSpace

        if not isinstance(search_space, TorchModelSpace):
            raise UserInputError(f"{space}: model= needs network.family: torch-model")
        search_space = search_space.with_model(model)
    chosen = runtime_named(runtime)
    if validate and validate < MIN_VALIDATE:
        raise UserInputError(f"--validate: needs 0 or at least {MIN_VALIDATE} candidates "
                             f"(30 or more for figures worth quoting), got {validate}")
    if statistic not in ("min", "median"):
        raise UserInputError(f"--statistic: must be min or median, got {statistic!r}")
    name = device or chosen.default_device
    if not re.match(DEVICE_NAME, name):
        raise UserInputError(f"--device: {name!r} is not a device name (letters, digits, '_', '.', '-')")
    out = out or Path("hw_profiles") / f"{name}.json"
    if out.is_dir():
        raise UserInputError(f"--out {out}: is a folder; give the profile's file name, e.g. {out / name}.json")
    if export_bundle is not None and export_bundle.exists() and not export_bundle.is_dir():
        raise UserInputError(f"--export-bundle {export_bundle}: is a file; give a folder for the bundle")
    return ProfileRequest(search_space, space, runtime, name, out, validate, threads, batch_size, statistic)


def make_profile(request: ProfileRequest, import_csv: Path | None = None) -> HardwareProfile:
    """Measure the device (or model it, or read a bundle runner's CSV), validate the table, save it."""
    space, origin, name = request.space, str(request.origin), request.device
    if import_csv is not None:
        from autocompress.hw.bundle import import_csv as read_csv

        profile = read_csv(space, origin, import_csv, name, request.statistic)
        save_profile(profile, request.out)
    elif runtime_named(request.runtime).modelled:
        from autocompress.hw.accelerator import modelled_profile

        profile = modelled_profile(space, origin, name, request.batch_size)
        save_profile(profile, request.out)
    else:
        from autocompress.hw.profiler import measure_profile

        profile = measure_profile(space, origin, request.runtime, name, request.out, request.threads,
                                  request.batch_size, request.validate, request.statistic)
    return profile


def profile_command(
    space: Annotated[Path, typer.Argument(help="search space YAML the table is made for")],
    runtime: Annotated[str, typer.Option(help=f"one of {', '.join(runtime_names())}")],
    device: Annotated[str | None, typer.Option(help="device name (default: cpu-RUNTIME)")] = None,
    out: Annotated[Path | None, typer.Option(help="default: hw_profiles/DEVICE.json")] = None,
    validate: Annotated[int, typer.Option(
        help="candidates of each set (drawn as the search draws them; random per-layer; uniform: the "
             "search's baselines first) measured end to end to validate the table (0: skip)")] = 30,
    threads: Annotated[int, typer.Option(min=1, help="threads the runtime may use")] = 1,
    batch_size: Annotated[int, typer.Option(min=1, help="images per timed batch")] = 32,
    export_bundle: Annotated[Path | None, typer.Option(
        help="write a bundle for a remote device here instead of measuring")] = None,
    import_csv: Annotated[Path | None, typer.Option(
        "--import", help="build the profile from a bundle runner's CSV")] = None,
    statistic: Annotated[str, typer.Option(
        help="statistic predictions show by default (both are fitted): median (typical) or "
             "min (best case, reproducible on a busy machine)")] = "median",
) -> None:
    """Measure a device's latency lookup table for SPACE and validate it end to end."""
    request = checked_request(space, runtime, device, out, validate, threads, batch_size, statistic, export_bundle)
    if export_bundle is not None:
        from autocompress.hw.bundle import export_bundle as write_bundle

        manifest = write_bundle(request.space, runtime, export_bundle, batch_size, threads, validate)
        typer.echo(f"wrote {manifest.parent}: copy it to the device, run 'python runner.py' "
                   f"there, then 'autocompress profile {space} --runtime {runtime} "
                   f"--import latency.csv --device NAME'")
        return
    profile = make_profile(request, import_csv)
    typer.echo(f"wrote {request.out}: {len(profile.entries)} entries, {profile.device.kind} "
               f"{profile.device.runtime}, batch {profile.device.batch_size}, "
               f"{profile.device.threads} thread(s)")
    _print_prediction(profile)
