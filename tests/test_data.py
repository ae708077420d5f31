"""User data: .npz arrays and image folders load into the same splits; bad paths say so."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from autocompress.data import load_splits
from autocompress.errors import UserInputError
from autocompress.space import DataSettings


def _arrays(count=40, size=12, channels=3):
    rng = np.random.default_rng(0)
    return rng.random((count, size, size, channels), dtype=np.float32), np.arange(count) % 4


def test_npz_channels_last_is_resized_and_split(tmp_path):
    x, y = _arrays()
    np.savez(tmp_path / "d.npz", x=x, y=y)
    settings = DataSettings(source=f"npz:{tmp_path / 'd.npz'}", image_size=16, channels=3, num_classes=4)
    splits = load_splits(settings)
    assert splits.train_x.shape[1:] == (3, 16, 16)
    assert len(splits.train_y) + len(splits.val_y) == 40
    assert set(splits.val_y.tolist()) == {0, 1, 2, 3}


def test_image_folder_loads_one_class_per_subfolder(tmp_path):
    x, y = _arrays(count=24, channels=1)
    for index, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = tmp_path / f"class_{label}"
        folder.mkdir(exist_ok=True)
        Image.fromarray((image[..., 0] * 255).astype(np.uint8)).save(folder / f"{index}.png")
    splits = load_splits(DataSettings(source=f"folder:{tmp_path}", image_size=12, num_classes=4))
    assert splits.train_x.shape[1:] == (1, 12, 12)
    assert len(splits.train_y) + len(splits.val_y) == 24


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: None, "not found"),
        (lambda p: (p / "d.npz").write_text("not numpy"), "not a readable .npz"),
        (lambda p: np.savez(p / "d.npz", images=np.zeros((4, 8, 8))), "needs arrays 'x'"),
    ],
)
def test_bad_npz_gets_one_line_naming_the_file(tmp_path, make, expected):
    make(tmp_path)
    with pytest.raises(UserInputError) as info:
        load_splits(DataSettings(source=f"npz:{tmp_path / 'd.npz'}"))
    assert str(tmp_path / "d.npz") in str(info.value) and expected in str(info.value)


def test_labels_beyond_num_classes_are_refused(tmp_path):
    x, _ = _arrays(channels=1)
    np.savez(tmp_path / "d.npz", x=x[..., 0], y=np.full(40, 12))
    with pytest.raises(UserInputError, match="labels must lie in 0..9"):
        load_splits(DataSettings(source=f"npz:{tmp_path / 'd.npz'}"))
