"""Data sets: scikit-learn's bundled digits (upsampled), an .npz of arrays, an image folder.

Three splits, train / validation / test, stratified and fixed by ``data.seed``; the search
scores and selects on validation, and only the final front is measured on test. Images are
resized to ``image_size`` and normalised to zero mean and unit variance with statistics
of the training split alone.

Digits are small and held in memory as tensors. An ``.npz`` or an image folder is read on
demand (``LazyImages``): the arrays of an uncompressed ``.npz`` (``np.savez``) are
memory-mapped, the files of a folder are decoded per batch, so memory does not grow with
the data set (a compressed ``np.savez_compressed`` file is read whole into memory). Every
image is read once when the data are opened, to check it (readable, one size, finite
numbers) and to compute the training statistics.
"""

from __future__ import annotations

import zipfile
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from autocompress.errors import UserInputError
from autocompress.progress import progress_bar
from autocompress.space import DataSettings

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif"}
SCAN_BYTES = 1 << 23
"""Float32 bytes of resized images read at once while checking the data (8 MiB)."""


class _Source(ABC):
    """Raw images of a data set, read by index as float32 (n, C, H, W) before resizing."""

    origin: str
    shape: tuple[int, int, int]

    @abstractmethod
    def __len__(self) -> int:
        """How many images the source holds."""

    @abstractmethod
    def read(self, index: np.ndarray) -> np.ndarray:
        """The images at ``index``."""

    def check(self, images: np.ndarray, index: np.ndarray) -> None:
        """Refuse pixels that are not finite numbers, naming the source."""
        if images.dtype.kind == "f" and not np.isfinite(images).all():
            first = int(index[np.flatnonzero(~np.isfinite(images).reshape(len(images), -1).all(1))[0]])
            raise UserInputError(f"{self.name(first)}: image {first} has NaN or infinite pixels")

    def name(self, position: int) -> str:
        return self.origin


def _channels_first(array: np.ndarray) -> np.ndarray:
    """(N,H,W) -> (N,1,H,W); (N,H,W,C) with C 1 or 3 -> (N,C,H,W); (N,C,H,W) unchanged."""
    if array.ndim == 3:
        return array[:, None]
    if array.shape[-1] in (1, 3) and array.shape[1] not in (1, 3):
        return array.transpose(0, 3, 1, 2)
    return array


class _ArraySource(_Source):
    """Images of an in-memory array (digits) or of one array of an ``.npz`` file."""

    def __init__(self, origin: str, array: np.ndarray, npz: Path | None = None, key: str = "") -> None:
        self.origin, self.npz, self.key = origin, npz, key
        self._array: np.ndarray | None = array
        self.shape = tuple(_channels_first(self.array[:1]).shape[1:])

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = _npz_array(self.npz, self.key)
        return self._array

    def __getstate__(self) -> dict:
        """A data-loader process maps the file again rather than receive a copy of the data."""
        return self.__dict__ | ({"_array": None} if self.npz is not None else {})

    def __len__(self) -> int:
        return len(self.array)

    def read(self, index: np.ndarray) -> np.ndarray:
        return _channels_first(np.asarray(self.array[index])).astype(np.float32)


class _FolderSource(_Source):
    """Images of a folder with one sub-folder per class, decoded when read."""

    def __init__(self, origin: str, files: list[str], classes: list[str], channels: int) -> None:
        self.origin, self.files, self.classes = origin, files, classes
        self.mode = "L" if channels == 1 else "RGB"
        self.shape = self._decode(0).shape

    def __len__(self) -> int:
        return len(self.files)

    def name(self, position: int) -> str:
        return self.files[position]

    def _decode(self, position: int) -> np.ndarray:
        from PIL import Image

        file = self.files[position]
        try:
            with Image.open(file) as image:
                array = np.asarray(image.convert(self.mode), dtype=np.float32) / 255.0
        except (OSError, ValueError, Image.DecompressionBombError) as error:
            raise UserInputError(f"{file}: not a readable image ({error})".splitlines()[0]) from None
        return array[None] if array.ndim == 2 else array.transpose(2, 0, 1)

    def read(self, index: np.ndarray) -> np.ndarray:
        images = [self._decode(int(i)) for i in index]
        for position, image in zip(index, images, strict=True):
            if image.shape != self.shape:
                raise UserInputError(f"{self.files[position]}: {image.shape[2]}x{image.shape[1]} pixels, but "
                                     f"{self.files[0]} has {self.shape[2]}x{self.shape[1]}; all images need one size")
        return np.stack(images)


class LazyImages:
    """Images of one split, read from their source when indexed, resized and normalised.

    Indexing by a slice or an index array returns a float tensor batch, as a tensor of the
    whole split would, so code written for in-memory tensors reads lazy data unchanged.
    """

    def __init__(self, source: _Source, positions: np.ndarray, size: int, mean: float, std: float) -> None:
        self.source, self.positions, self.size = source, positions, size
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self), self.source.shape[0], self.size, self.size)

    def __getitem__(self, key: slice | np.ndarray | torch.Tensor | Sequence[int]) -> torch.Tensor:
        positions = self.positions[key] if isinstance(key, slice) else self.positions[np.asarray(key)]
        return (_resized(torch.from_numpy(self.source.read(positions)), self.size) - self.mean) / self.std


Images = torch.Tensor | LazyImages


def _resized(x: torch.Tensor, size: int) -> torch.Tensor:
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


class _Batches(torch.utils.data.Dataset):
    """A split as a data set whose items are whole batches, picked by an index tensor."""

    def __init__(self, images: Images, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[index], self.labels[index]


@dataclass(frozen=True)
class Splits:
    train_x: Images
    train_y: torch.Tensor
    val_x: Images
    val_y: torch.Tensor
    test_x: Images
    test_y: torch.Tensor
    loader_workers: int = 0

    def image_counts(self) -> dict[str, int]:
        """Images in each split, as a run's config.json records them (``split_images``)."""
        return {"train": len(self.train_y), "val": len(self.val_y), "test": len(self.test_y)}

    def batches(self, batch_size: int, generator: torch.Generator | None = None,
                shuffle: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(x, y) training mini-batches through a torch ``DataLoader``, shuffled with ``generator``.

        The order is drawn here, so ``data.loader_workers`` processes decoding images in
        parallel change nothing but the speed.
        """
        count = len(self.train_y)
        order = torch.randperm(count, generator=generator) if shuffle else torch.arange(count)
        plan = list(order.split(batch_size))
        loader = DataLoader(_Batches(self.train_x, self.train_y), batch_size=None, sampler=plan,
                            num_workers=self.loader_workers)
        yield from loader


def chunks(images: Images, size: int = 512) -> Iterator[torch.Tensor]:
    """``images`` in consecutive batches of ``size``."""
    for start in range(0, len(images), size):
        yield images[start : start + size]


def _digits() -> tuple[_Source, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return _ArraySource("digits", bunch.images[:, None].astype(np.float32) / 16.0), bunch.target


def _npz_member(path: Path, key: str) -> np.memmap | None:
    """Array ``key`` of an uncompressed .npz, memory-mapped; None if stored compressed."""
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(f"{key}.npy")
    if info.compress_type != zipfile.ZIP_STORED:
        return None
    with open(path, "rb") as handle:
        handle.seek(info.header_offset)
        header = handle.read(30)
        start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30],
                                                                                                   "little")
        handle.seek(start)
        version = np.lib.format.read_magic(handle)
        if version not in ((1, 0), (2, 0)):
            return None
        reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = reader(handle)
        offset = handle.tell()
    if dtype.hasobject:
        raise UserInputError(f"{path}: array {key!r} holds Python objects; it needs numbers")
    return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")


def _npz_array(path: Path, key: str) -> np.ndarray:
    try:
        mapped = _npz_member(path, key)
        return mapped if mapped is not None else _npz_load(path, key)
    except (OSError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise UserInputError(f"{path}: cannot read array {key!r} ({error})".splitlines()[0]) from None


def _npz_load(path: Path, key: str) -> np.ndarray:
    """Array ``key`` of an .npz read whole into memory (compressed members, labels)."""
    with np.load(path) as arrays:
        try:
            return arrays[key]
        except ValueError as error:  # numpy refuses pickled object arrays (allow_pickle=False)
            raise UserInputError(f"{path}: array {key!r} holds Python objects; it needs numbers") from error


def _npz(path: Path) -> tuple[_Source, np.ndarray]:
    if not path.is_file():
        raise UserInputError(f"{path}: data file not found")
    try:
        with np.load(path) as arrays:
            keys = list(arrays)
            x_key = next((k for k in ("x", "X", "images") if k in keys), None)
            y_key = next((k for k in ("y", "labels", "targets") if k in keys), None)
            if x_key is None or y_key is None:
                raise UserInputError(f"{path}: needs arrays 'x' (images) and 'y' (labels); has {keys}")
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UserInputError(f"{path}: not a readable .npz file ({error})".splitlines()[0]) from None
    labels = _npz_load(path, y_key)
    x = _npz_array(path, x_key)
    if x.dtype.kind not in "biuf":
        raise UserInputError(f"{path}: 'x' must hold numbers, not {x.dtype}")
    if x.ndim not in (3, 4) or len(x) != len(labels):
        raise UserInputError(f"{path}: 'x' must be (N,H,W), (N,C,H,W) or (N,H,W,C) with N labels in 'y'; "
                             f"x is {x.shape}, y is {labels.shape}")
    if len(x) == 0:
        raise UserInputError(f"{path}: holds no images")
    return _ArraySource(str(path), x, path, x_key), labels


def _folder(path: Path, channels: int) -> tuple[_Source, np.ndarray]:
    if not path.is_dir():
        raise UserInputError(f"{path}: image folder not found")
    classes = sorted(p for p in path.iterdir() if p.is_dir())
    if not classes:
        raise UserInputError(f"{path}: needs one sub-folder of images per class")
    files: list[str] = []
    labels: list[int] = []
    for label, folder in enumerate(classes):
        found = sorted(str(f) for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise UserInputError(f"{folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in this class folder")
        files += found
        labels += [label] * len(found)
    source = _FolderSource(str(path), files, [str(c) for c in classes], channels)
    return source, np.array(labels, dtype=np.int64)


def _labels(raw: np.ndarray, origin: str, num_classes: int) -> np.ndarray:
    """Integer labels in 0..num_classes-1 of at least two classes, or one line saying what is wrong."""
    if raw.ndim != 1:
        raise UserInputError(f"{origin}: labels must be one number per image, got shape {raw.shape}")
    if raw.dtype.kind not in "iuf":
        raise UserInputError(f"{origin}: labels must be integers, not {raw.dtype}")
    if raw.dtype.kind == "f" and not (np.isfinite(raw).all() and (raw == np.round(raw)).all()):
        bad = raw[~(np.isfinite(raw) & (raw == np.round(raw)))][0]
        raise UserInputError(f"{origin}: labels must be whole numbers (found {bad})")
    if raw.min() < 0 or raw.max() >= num_classes:
        raise UserInputError(f"{origin}: labels must lie in 0..{num_classes - 1} (data.num_classes is "
                             f"{num_classes}); found {raw.min():g}..{raw.max():g}")
    labels = raw.astype(np.int64)
    if len(np.unique(labels)) < 2:
        raise UserInputError(f"{origin}: all images have label {labels[0]}; needs at least two classes")
    return labels


def split_positions(labels: np.ndarray, settings: DataSettings,
                    class_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stratified, seeded train / validation / test positions, disjoint and sorted.

    Each class gives ``val_fraction`` and ``test_fraction`` of its images (rounded, at least
    one each) to validation and test, and keeps at least one for training.
    """
    rng = np.random.default_rng(settings.seed)
    parts: tuple[list, list, list] = ([], [], [])
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        count = len(members)
        test = max(1, round(settings.test_fraction * count))
        val = max(1, round(settings.val_fraction * count))
        if count - test - val < 1:
            raise UserInputError(f"{class_names[label]}: class {label} has {count} image(s), too few for a training, "
                                 f"a validation (data.val_fraction {settings.val_fraction}) and a test "
                                 f"(data.test_fraction {settings.test_fraction}) share")
        for part, chosen in zip(parts, (members[test + val :], members[test : test + val], members[:test]),
                                strict=True):
            part.append(chosen)
    train, val, test = (np.sort(np.concatenate(part)) for part in parts)
    return train, val, test


def _open(settings: DataSettings) -> tuple[_Source, np.ndarray, list[str]]:
    """The source, its checked labels, and a name for each class to quote in errors."""
    source = settings.source
    if source == "digits":
        images, raw = _digits()
    elif source.startswith("npz:"):
        images, raw = _npz(Path(source[4:]))
    else:
        images, raw = _folder(Path(source[7:]), settings.channels)
    if images.shape[0] != settings.channels:
        raise UserInputError(f"{images.origin}: images have {images.shape[0]} channels, "
                             f"the space's data.channels says {settings.channels}")
    if isinstance(images, _FolderSource):
        if len(images.classes) > settings.num_classes:
            raise UserInputError(f"{images.origin}: {len(images.classes)} class folders, but data.num_classes is "
                                 f"{settings.num_classes}")
        return images, _labels(raw, images.origin, settings.num_classes), images.classes
    return images, _labels(np.asarray(raw), images.origin, settings.num_classes), [images.origin] * settings.num_classes


def _train_statistics(source: _Source, train: np.ndarray, size: int, progress: bool) -> tuple[float, float]:
    """Mean and standard deviation of the resized training images, reading every image once
    (so that an unreadable one fails now, naming its file, not in the middle of a search)."""
    channels = source.shape[0]
    step = max(1, SCAN_BYTES // (4 * channels * max(size, *source.shape[1:]) ** 2))
    is_train = np.zeros(len(source), dtype=bool)
    is_train[train] = True
    total = squares = 0.0
    with progress_bar(total=len(source), desc="checking the data", unit="image", enabled=progress) as bar:
        for start in range(0, len(source), step):
            index = np.arange(start, min(start + step, len(source)))
            raw = source.read(index)
            source.check(raw, index)
            chosen = torch.from_numpy(raw[is_train[index]]).double()
            if len(chosen):
                chosen = _resized(chosen, size)
                total += float(chosen.sum())
                squares += float((chosen**2).sum())
            bar.update(len(index))
    count = len(train) * channels * size * size
    mean = total / count
    variance = (squares - count * mean**2) / max(1, count - 1)
    return mean, max(variance, 0.0) ** 0.5 or 1e-6


def load_splits(settings: DataSettings, progress: bool = False) -> Splits:
    """Train / validation / test splits of ``settings.source``, checked, resized and normalised.

    ``progress`` shows a bar while every image is checked (long for a large folder).
    """
    source, labels, class_names = _open(settings)
    positions = split_positions(labels, settings, class_names)
    mean, std = _train_statistics(source, positions[0], settings.image_size, progress)
    images = [LazyImages(source, p, settings.image_size, mean, std) for p in positions]
    if settings.source == "digits":  # small: in memory, and indexing stays as fast as a tensor's
        images = [part[:] for part in images]
    ys = [torch.from_numpy(labels[p]) for p in positions]
    return Splits(images[0], ys[0], images[1], ys[1], images[2], ys[2], settings.loader_workers)
