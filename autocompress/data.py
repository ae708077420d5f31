"""Data sets: scikit-learn's bundled digits (upsampled), an .npz of arrays, an image folder.

Everything is held in memory as float tensors (N, C, H, W) normalised to zero mean and
unit variance over the training split; splits are stratified and seeded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.model_selection import train_test_split

from autocompress.errors import UserInputError
from autocompress.space import DataSettings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}


@dataclass(frozen=True)
class Splits:
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor

    def batches(self, batch_size: int, generator: torch.Generator | None = None, shuffle: bool = True):
        """Yield (x, y) training mini-batches, shuffled with ``generator``."""
        count = len(self.train_y)
        order = torch.randperm(count, generator=generator) if shuffle else torch.arange(count)
        for start in range(0, count, batch_size):
            index = order[start : start + batch_size]
            yield self.train_x[index], self.train_y[index]


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images[:, None].astype(np.float32) / 16.0, bunch.target.astype(np.int64)


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise UserInputError(f"{path}: data file not found")
    try:
        arrays = np.load(path)
    except (OSError, ValueError) as error:
        raise UserInputError(f"{path}: not a readable .npz file ({error})") from None
    x_key = next((k for k in ("x", "X", "images") if k in arrays), None)
    y_key = next((k for k in ("y", "labels", "targets") if k in arrays), None)
    if x_key is None or y_key is None:
        raise UserInputError(f"{path}: needs arrays 'x' (images) and 'y' (labels); has {list(arrays)}")
    x, y = arrays[x_key].astype(np.float32), arrays[y_key].astype(np.int64)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    if x.ndim != 4 or len(x) != len(y):
        raise UserInputError(f"{path}: 'x' must be (N,H,W), (N,C,H,W) or (N,H,W,C) with N labels in 'y'")
    return x, y


def _folder(path: Path, channels: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    if not path.is_dir():
        raise UserInputError(f"{path}: image folder not found")
    classes = sorted(p.name for p in path.iterdir() if p.is_dir())
    if not classes:
        raise UserInputError(f"{path}: needs one sub-folder of images per class")
    mode = "L" if channels == 1 else "RGB"
    images, labels = [], []
    for label, name in enumerate(classes):
        for file in sorted((path / name).iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                with Image.open(file) as image:
                    array = np.asarray(image.convert(mode), dtype=np.float32) / 255.0
                images.append(array[None] if channels == 1 else array.transpose(2, 0, 1))
                labels.append(label)
    if not images:
        raise UserInputError(f"{path}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise UserInputError(f"{path}: images differ in size ({sorted(shapes)[:2]}...)")
    return np.stack(images), np.array(labels, dtype=np.int64)


def load_arrays(settings: DataSettings) -> tuple[np.ndarray, np.ndarray]:
    source = settings.source
    if source == "digits":
        return _digits()
    if source.startswith("npz:"):
        return _npz(Path(source[4:]))
    return _folder(Path(source[7:]), settings.channels)


def load_splits(settings: DataSettings) -> Splits:
    """Train/validation splits resized to ``image_size`` and normalised."""
    x, y = load_arrays(settings)
    if x.shape[1] != settings.channels:
        raise UserInputError(
            f"{settings.source}: images have {x.shape[1]} channels, the space's data.channels says {settings.channels}"
        )
    if int(y.max()) >= settings.num_classes or int(y.min()) < 0:
        raise UserInputError(f"{settings.source}: labels must lie in 0..{settings.num_classes - 1}")
    tx, vx, ty, vy = train_test_split(
        x, y, test_size=settings.val_fraction, random_state=settings.seed, stratify=y
    )
    train_x, val_x = torch.from_numpy(tx), torch.from_numpy(vx)
    size = settings.image_size
    if train_x.shape[-1] != size or train_x.shape[-2] != size:
        train_x = F.interpolate(train_x, size=(size, size), mode="bilinear", align_corners=False)
        val_x = F.interpolate(val_x, size=(size, size), mode="bilinear", align_corners=False)
    mean, std = train_x.mean(), train_x.std().clamp_min(1e-6)
    return Splits((train_x - mean) / std, torch.from_numpy(ty), (val_x - mean) / std, torch.from_numpy(vy))
