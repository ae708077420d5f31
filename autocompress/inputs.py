"""Reading the files a user hands in: UTF-8 text, YAML, JSON, and one-line validation errors.

Every reader here turns what is wrong with a file into a ``UserInputError`` whose one
line starts with the file's path, so the CLI can print it and exit with status 2. YAML
mappings with a repeated key and JSON numbers that are not finite are refused: both are
otherwise accepted silently (the later key wins; ``Infinity`` and ``1e999`` become inf).
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import warnings
from collections.abc import Hashable, Iterator
from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from autocompress.errors import UserInputError

Model = TypeVar("Model", bound=BaseModel)


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; ``what`` names the kind of file in the error when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"{path}: {what} not found" + (" (it is a folder)" if path.is_dir() else ""))
    try:
        data = path.read_bytes()
    except OSError as error:
        raise UserInputError(f"{path}: cannot read the {what} ({error.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UserInputError(f"{path}: not UTF-8 text (byte 0x{data[error.start]:02x} at offset {error.start}); "
                             f"save the {what} as UTF-8") from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, but a mapping that repeats a key is an error."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *anchor' may be overridden by the keys beside it
            continue
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, Hashable):
            continue  # construct_mapping rejects it below, with its own message
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=True)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_yaml(path: Path, what: str) -> object:
    """The YAML document in ``path`` (UTF-8, no repeated keys)."""
    text = read_text(path, what)
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "?"
        raise UserInputError(f"{path}: not valid YAML ({where}): {getattr(error, 'problem', None) or error}") from None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is not finite")
    return value


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def load_json(path: Path, what: str) -> object:
    """The JSON document in ``path`` (UTF-8; NaN, Infinity and overflowing numbers refused)."""
    text = read_text(path, what)
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except ValueError as error:  # json.JSONDecodeError is one
        raise UserInputError(f"{path}: not valid JSON ({error})") from None


def one_line(error: ValidationError) -> str:
    """The first problem pydantic found, as ``key.path: message`` on one line."""
    first = error.errors()[0]
    message = first["msg"].removeprefix("Value error, ").replace("\n", " ")
    key_path = ".".join(str(part) for part in first["loc"])
    return f"{key_path}: {message}" if key_path else message


def validated(model: type[Model], data: object, origin: Path | str) -> Model:
    """``data`` as ``model``; a problem is one line naming ``origin`` and the key path."""
    if not isinstance(data, dict):
        raise UserInputError(f"{origin}: expected a mapping of keys, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise UserInputError(f"{origin}: {one_line(error)}") from None


def unreadable(path: Path, what: str, error: BaseException) -> UserInputError:
    """The one-line error for a file that exists but could not be loaded (torch, SQLite, ...):
    the loader's first sentence only, as some explain at length."""
    detail = re.split(r"(?<=\.)\s", (str(error).strip().splitlines() or [""])[0])[0][:160]
    return UserInputError(f"{path}: not a readable {what} ({type(error).__name__}: {detail})")


@contextlib.contextmanager
def loading(path: Path, what: str) -> Iterator[None]:
    """Any failure inside (torch.load, load_state_dict, ...) becomes ``unreadable``; the
    loader's warnings about the broken file are kept off the screen."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        except Exception as error:  # a broken file makes loaders raise errors of every kind
            raise unreadable(path, what, error) from None
