"""Bad data files through the real command line: one line naming the file, exit 2, no
traceback, nothing created (issue 16's data cases).

Each case writes a broken ``.npz`` or image folder and runs ``train-base`` on a tiny space
pointing at it; the data are checked before any training, so each case takes well under
a second.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from autocompress.cli import app
from tests.conftest import REPO

TINY = REPO / "tests" / "spaces" / "search_tiny.yaml"
GOOD_X = np.random.default_rng(0).random((30, 8, 8), dtype=np.float32)
GOOD_Y = np.arange(30) % 3


def _npz(**arrays) -> Callable[[Path], Path]:
    def make(directory: Path) -> Path:
        path = directory / "data.npz"
        np.savez(path, **arrays)
        return path

    return make


def _raw(content: bytes) -> Callable[[Path], Path]:
    def make(directory: Path) -> Path:
        (directory / "data.npz").write_bytes(content)
        return directory / "data.npz"

    return make


def _with(pixel: tuple | None = None, label: tuple | None = None, y: np.ndarray = GOOD_Y) -> Callable[[Path], Path]:
    """The good arrays with one pixel and/or label set: ``(index, value)``."""
    x, y = GOOD_X.copy(), y.copy()
    for array, change in ((x, pixel), (y, label)):
        if change is not None:
            array[change[0]] = change[1]
    return _npz(x=x, y=y)


def _folder(sizes: dict[str, list[int]], broken: Callable[[Path], None] | None = None) -> Callable[[Path], Path]:
    """Class folders with images of the given sizes; ``broken`` then spoils one of them."""

    def make(directory: Path) -> Path:
        root = directory / "images"
        for name, widths in sizes.items():
            (root / name).mkdir(parents=True)
            for index, width in enumerate(widths):
                Image.fromarray(np.full((8, width), 40 * index, np.uint8)).save(root / name / f"{index}.png")
        if broken is not None:
            broken(root)
        return root

    return make


def _truncate(path: Path) -> None:
    """A noisy image of the same size cut in half: its header reads, its pixels do not."""
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (8, 8), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


CASES = {
    "npz not a zip": (_raw(b"not numpy at all"), "data.npz", "not a readable .npz"),
    "npz empty file": (_raw(b""), "data.npz", "not a readable .npz"),
    "npz without x": (_npz(images_of=GOOD_X, y=GOOD_Y), "data.npz", "needs arrays 'x'"),
    "npz object pixels": (_npz(x=np.array([[1], "a"], dtype=object), y=GOOD_Y[:2]), "data.npz", "objects"),
    "npz string pixels": (_npz(x=np.full((30, 8, 8), "a"), y=GOOD_Y), "data.npz", "numbers"),
    "npz string labels": (_npz(x=GOOD_X, y=np.array(["cat", "dog", "eel"] * 10)), "data.npz", "integers"),
    "npz object labels": (_npz(x=GOOD_X, y=np.array([1, "a"] * 15, dtype=object)), "data.npz", "objects"),
    "npz fractional labels": (_with(label=(4, 0.5), y=GOOD_Y.astype(float)), "data.npz", "whole numbers"),
    "npz negative labels": (_with(label=(slice(0, 3), -1)), "data.npz", "0..9"),
    "npz labels beyond classes": (_with(label=(0, 10)), "data.npz", "0..9"),
    "npz one class": (_npz(x=GOOD_X, y=np.zeros(30, dtype=int)), "data.npz", "two classes"),
    "npz class of one image": (_npz(x=GOOD_X[:21], y=np.array([0] * 10 + [1] * 10 + [2])), "data.npz",
                               "class 2 has 1 image"),
    "npz no images": (_npz(x=np.zeros((0, 8, 8), np.float32), y=np.zeros(0, int)), "data.npz", "no images"),
    "npz nan pixel": (_with(pixel=((3, 2, 2), np.nan)), "data.npz", "NaN or infinite"),
    "npz inf pixel": (_with(pixel=((29, 0, 7), np.inf)), "data.npz", "NaN or infinite"),
    "npz labels of another length": (_npz(x=GOOD_X, y=GOOD_Y[:20]), "data.npz", "N labels"),
    "npz 2-d labels": (_npz(x=GOOD_X, y=GOOD_Y[:, None]), "data.npz", "one number per image"),
    "npz 2-d pixels": (_npz(x=GOOD_X[:, 0], y=GOOD_Y), "data.npz", "(N,H,W)"),
    "npz wrong channels": (_npz(x=np.zeros((30, 3, 8, 8), np.float32), y=GOOD_Y), "data.npz", "3 channels"),
    "folder missing": (lambda d: d / "nowhere", "nowhere", "not found"),
    "folder without classes": (lambda d: (d / "images").mkdir() or d / "images", "images", "sub-folder"),
    "folder empty class": (_folder({"a": [8] * 3, "b": []}), "images/b", "no images"),
    "folder class of one image": (_folder({"a": [8] * 4, "b": [8]}), "images/b", "1 image"),
    "folder corrupt image": (_folder({"a": [8] * 4, "b": [8] * 4},
                                     lambda r: (r / "b" / "2.png").write_bytes(b"garbage")), "b/2.png", "readable"),
    "folder truncated image": (_folder({"a": [8] * 4, "b": [8] * 4}, lambda r: _truncate(r / "a" / "3.png")),
                               "a/3.png", "readable"),
    "folder sizes differ": (_folder({"a": [8] * 4, "b": [8, 8, 9, 8]}), "b/2.png", "one size"),
    "folder too many classes": (_folder({str(c): [8] * 3 for c in range(11)}), "images", "num_classes"),
}


def _space(directory: Path, source: str) -> Path:
    data = yaml.safe_load(TINY.read_text())
    data["data"]["source"] = source
    path = directory / "space.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _files(directory: Path) -> set[Path]:
    return set(directory.rglob("*"))


@pytest.mark.parametrize(("make", "named", "says"), list(CASES.values()), ids=list(CASES))
def test_bad_data_gets_one_line_naming_the_file_and_exit_2(tmp_path, make, named, says):
    data = make(tmp_path)
    kind = "folder" if data.suffix != ".npz" else "npz"
    space = _space(tmp_path, f"{kind}:{data}")
    before = _files(tmp_path)
    result = CliRunner().invoke(app, ["train-base", str(space), "--base-dir", str(tmp_path / "base")])
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)  # not an uncaught error (a traceback at the terminal)
    lines = result.stderr.strip().splitlines()
    assert len(lines) <= 3 and named in lines[0] and says in lines[0], lines
    assert _files(tmp_path) == before


def test_a_corrupt_image_through_the_installed_command(tmp_path):
    """The same as above in a fresh process, as a user runs it: no traceback on stderr."""
    data = CASES["folder corrupt image"][0](tmp_path)
    space = _space(tmp_path, f"folder:{data}")
    before = _files(tmp_path)
    result = subprocess.run([sys.executable, "-m", "autocompress", "train-base", str(space), "--base-dir",
                             str(tmp_path / "base")], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and "b/2.png" in result.stderr
    assert _files(tmp_path) == before
