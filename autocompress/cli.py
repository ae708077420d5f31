"""The ``autocompress`` command line.

Every command turns bad input into one line on stderr and exit status 2
(``UserInputError``); each subsystem keeps its command function in its own module and
is registered here.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from autocompress.errors import UserInputError
from autocompress.progress import lines_on_stderr

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Hardware-aware AutoML search for compressed neural networks.")


@app.callback()
def main() -> None:
    """Hardware-aware AutoML search for compressed neural networks."""
    lines_on_stderr()


def user_errors_exit_2(func: Callable) -> Callable:
    """Print a UserInputError as one line and exit with status 2."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except UserInputError as error:
            typer.echo(f"error: {error}", err=True)
            sys.exit(2)

    return wrapper


def register(name: str, func: Callable) -> None:
    app.command(name)(user_errors_exit_2(func))


SpaceArg = Annotated[Path, typer.Argument(help="search space YAML, e.g. search_spaces/mobilenet_digits.yaml")]


def train_base_command(
    space: SpaceArg,
    base_dir: Annotated[Path, typer.Option(help="where base networks are kept")] = Path("results/_base"),
    force: Annotated[bool, typer.Option(help="train again even if a saved base exists")] = False,
    device: Annotated[str, typer.Option(help="cpu | cuda (a GPU, where torch finds one)")] = "cpu",
) -> None:
    """Train the space's base (largest) network once; later commands reuse it."""
    from autocompress.base import base_path, load_base, train_base
    from autocompress.data import load_splits
    from autocompress.devices import training_device
    from autocompress.models.space_file import load_space

    device = training_device(device)
    search_space = load_space(space)
    path = base_path(search_space, base_dir)
    if path.is_file() and not force:
        _, info = load_base(search_space, path)
        typer.echo(f"base network already trained: {path} (accuracy {info['accuracy']:.4f})")
        return
    splits = load_splits(search_space.data, progress=True)
    typer.echo(f"training the base network of {search_space.name} on {device} "
               f"({search_space.training.base_epochs} epochs, {len(splits.train_y)} training images)...")
    _, info = train_base(search_space, splits, path, device=device)
    typer.echo(f"saved {path}: validation accuracy {info['accuracy']:.4f}, "
               f"trained in {info['train_seconds']:.1f} s")


register("train-base", train_base_command)
# Subsystem commands register below.
from autocompress.search.command import search_command  # noqa: E402

register("search", search_command)
from autocompress.hw.cli import profile_command  # noqa: E402

register("profile", profile_command)
from autocompress.export.command import export_command  # noqa: E402
from autocompress.report.command import compare_command, report_command  # noqa: E402

register("report", report_command)
register("export", export_command)
register("compare", compare_command)
from autocompress.verify.command import verify_command  # noqa: E402

register("verify", verify_command)
from autocompress.run.command import status_command  # noqa: E402

register("status", status_command)
