"""User data: .npz arrays and image folders load into the same three splits, read lazily;
the splits are disjoint, stratified and seeded; normalisation sees the training split only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from autocompress.data import LazyImages, load_splits, split_positions
from autocompress.errors import UserInputError
from autocompress.models.space_file import parse_space
from autocompress.space import DataSettings
from tests.conftest import DEFAULT_SPACE


def _arrays(count=40, size=12, channels=3):
    rng = np.random.default_rng(0)
    return rng.random((count, size, size, channels), dtype=np.float32), np.arange(count) % 4


def _npz(tmp_path, compressed=False, **arrays):
    path = tmp_path / "d.npz"
    (np.savez_compressed if compressed else np.savez)(path, **arrays)
    return path


def _folder(tmp_path, count=24, size=12):
    x, y = _arrays(count=count, size=size, channels=1)
    for index, (image, label) in enumerate(zip(x, y, strict=True)):
        folder = tmp_path / f"class_{label}"
        folder.mkdir(exist_ok=True)
        Image.fromarray((image[..., 0] * 255).astype(np.uint8)).save(folder / f"{index}.png")
    return tmp_path


@pytest.mark.parametrize("compressed", [False, True])
def test_npz_channels_last_is_resized_and_split_in_three(tmp_path, compressed):
    x, y = _arrays()
    path = _npz(tmp_path, compressed, x=x, y=y)
    splits = load_splits(DataSettings(source=f"npz:{path}", image_size=16, channels=3, num_classes=4))
    assert isinstance(splits.train_x, LazyImages)
    assert isinstance(splits.train_x.source.array, np.memmap) is not compressed  # uncompressed: memory-mapped
    assert splits.train_x[:5].shape == (5, 3, 16, 16) and splits.test_x.shape[1:] == (3, 16, 16)
    assert len(splits.train_y) + len(splits.val_y) + len(splits.test_y) == 40
    assert set(splits.val_y.tolist()) == set(splits.test_y.tolist()) == {0, 1, 2, 3}


def test_image_folder_is_read_lazily_with_one_class_per_subfolder(tmp_path):
    splits = load_splits(DataSettings(source=f"folder:{_folder(tmp_path)}", image_size=12, num_classes=4))
    assert isinstance(splits.train_x, LazyImages)
    assert splits.train_x[np.array([2, 0])].shape == (2, 1, 12, 12)
    assert len(splits.train_y) + len(splits.val_y) + len(splits.test_y) == 24


def test_splits_are_disjoint_stratified_and_fixed_by_the_seed():
    labels = np.repeat(np.arange(5), 40)
    settings = DataSettings(val_fraction=0.25, test_fraction=0.2, seed=3)
    train, val, test = split_positions(labels, settings, ["digits"] * 10)
    assert not set(train) & set(val) and not set(train) & set(test) and not set(val) & set(test)
    assert len(train) + len(val) + len(test) == len(labels)
    assert all(np.bincount(labels[part]).tolist() == [n] * 5 for part, n in ((train, 22), (val, 10), (test, 8)))
    again = split_positions(labels, settings, ["digits"] * 10)
    other = split_positions(labels, settings.model_copy(update={"seed": 4}), ["digits"] * 10)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test), strict=True))
    assert not np.array_equal(other[2], test)


def test_digits_keep_validation_and_test_apart(digits_splits):
    sizes = len(digits_splits.train_y), len(digits_splits.val_y), len(digits_splits.test_y)
    assert sizes == (988, 450, 359)
    assert isinstance(digits_splits.train_x, torch.Tensor)  # small and built in: in memory
    rows = {tuple(row.tolist()) for row in digits_splits.test_x.flatten(1)}
    assert not rows & {tuple(row.tolist()) for row in digits_splits.val_x.flatten(1)}


def test_normalisation_statistics_come_from_the_training_split_only(tmp_path):
    x, y = _arrays(count=60, channels=1)
    settings = DataSettings(source=f"npz:{tmp_path / 'd.npz'}", image_size=12, num_classes=4)
    _npz(tmp_path, x=x, y=y)
    before = load_splits(settings)
    held_out = np.concatenate([before.val_x.positions, before.test_x.positions])
    x[held_out] *= 10  # changing validation and test images changes nothing of the training split
    _npz(tmp_path, x=x, y=y)
    after = load_splits(settings)
    torch.testing.assert_close(after.train_x[:], before.train_x[:])
    train = after.train_x[:]
    assert abs(float(train.mean())) < 1e-5 and float(train.std()) == pytest.approx(1.0, abs=1e-4)


def test_loader_processes_read_the_same_batches_without_copying_the_data(tmp_path):
    x, y = _arrays(count=60, channels=1)
    settings = DataSettings(source=f"npz:{_npz(tmp_path, x=x, y=y)}", image_size=12, num_classes=4)
    inline = load_splits(settings)
    parallel = load_splits(settings.model_copy(update={"loader_workers": 2}))
    assert parallel.train_x.source.__getstate__()["_array"] is None  # a worker maps the file again
    for (xa, ya), (xb, yb) in zip(inline.batches(16, torch.Generator().manual_seed(1)),
                                  parallel.batches(16, torch.Generator().manual_seed(1)), strict=True):
        torch.testing.assert_close(xa, xb)
        assert torch.equal(ya, yb)


def test_the_space_accepts_images_up_to_224_and_keeps_data_to_train_on():
    data = yaml.safe_load(DEFAULT_SPACE.read_text())
    data["data"]["image_size"] = 224
    assert parse_space(data, DEFAULT_SPACE).data.image_size == 224
    data["data"] |= {"val_fraction": 0.5, "test_fraction": 0.4}
    with pytest.raises(UserInputError, match="val_fraction \\+ test_fraction"):
        parse_space(data, DEFAULT_SPACE)


def test_labels_beyond_num_classes_are_refused(tmp_path):
    x, _ = _arrays(channels=1)
    path = _npz(tmp_path, x=x[..., 0], y=np.full(40, 12))
    with pytest.raises(UserInputError, match="labels must lie in 0..9"):
        load_splits(DataSettings(source=f"npz:{path}"))
