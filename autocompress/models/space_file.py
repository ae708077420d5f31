"""Reading a search-space file: its YAML validated into the settings class of the model
family it names (``network.family``), so a wrong key or value is one line naming the file,
the key path and what is allowed (``UserInputError``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ValidationError

from autocompress.errors import UserInputError
from autocompress.inputs import load_yaml
from autocompress.models.family import FAMILIES, family_names
from autocompress.space import SearchSpace


def space_class(data: dict, origin: Path) -> type[SearchSpace]:
    """The settings class of the space's model family (``network.family``, default mobilenet)."""
    network = data.get("network")
    name = network.get("family", "mobilenet") if isinstance(network, dict) else "mobilenet"
    if name not in family_names():
        raise UserInputError(f"{origin}: network.family: unknown model family {name!r} "
                             f"(allowed: {', '.join(family_names())})")
    return FAMILIES[name].space_type


def _format_error(path: Path, error: ValidationError, model: type[BaseModel]) -> str:
    first = error.errors()[0]
    key_path = ".".join(str(part) for part in first["loc"]) or "<root>"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        parent = first["loc"][:-1]
        for part in parent:
            field = model.model_fields.get(str(part)) if isinstance(part, str) else None
            annotation = getattr(field, "annotation", None)
            model = annotation if isinstance(annotation, type) else None
            if model is None:
                break
        allowed = ", ".join(model.model_fields) if model is not None else "see DESIGN.md"
        message = f"unknown key (allowed: {allowed})"
    return f"{path}: {key_path}: {message}"


def parse_space(data: object, origin: Path) -> SearchSpace:
    """Validate already-loaded YAML data; ``origin`` names the file in errors."""
    if not isinstance(data, dict):
        raise UserInputError(f"{origin}: <root>: expected a mapping of keys, got {type(data).__name__}")
    cls = space_class(data, origin)
    try:
        return cls.model_validate(data)
    except ValidationError as error:
        raise UserInputError(_format_error(origin, error, cls)) from None


def load_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file."""
    path = Path(path)
    return parse_space(load_yaml(path, "search space file"), path)
