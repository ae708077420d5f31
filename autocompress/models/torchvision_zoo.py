"""torchvision's classification models, loaded in one place and built without downloading.

torchvision is an optional extra (``pip install -e '.[torchvision]'``; ``scripts/setup.sh``
installs the build matching the installed torch). Its model definitions are plain Python,
but ``import torchvision`` also registers its compiled ops (``torchvision/__init__.py``
imports ``_meta_registrations``), and a wheel built against another torch build (PyPI's
CUDA torch, where this machine has the CPU one) fails there with "operator
torchvision::nms does not exist". When the normal import fails that way, this module
registers the ``torchvision`` package namespace without running its ``__init__.py`` and
imports ``torchvision.models`` from it: the classifiers need none of the compiled ops (the
detection models' NMS and the image decoders, never used here, would not work).

Networks get random weights, or a user's state-dict file; pretrained weights are never
downloaded.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autocompress.errors import UserInputError
from autocompress.inputs import loading

INSTALL_HINT = ("bash scripts/setup.sh (it installs the release made for the installed torch, without "
                "replacing torch), or pip install -e '.[torchvision]'")
BUILD_ARGUMENTS: dict[str, dict[str, Any]] = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}
"""Per-model arguments a model needs to be built without its pretrained weights: no
auxiliary classifiers (their training-mode output is a tuple, not logits) and torchvision's
own initialisation chosen explicitly (left unset it warns)."""


def _namespace_without_init() -> None:
    """Register ``torchvision`` as a bare package of its installed folder, so that its
    submodules import without ``torchvision/__init__.py`` (and its compiled ops)."""
    for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
        del sys.modules[name]  # what the failed import left half-initialised
    spec = importlib.util.find_spec("torchvision")
    folder = str(Path(spec.origin).parent)
    package = types.ModuleType("torchvision")
    package.__path__ = [folder]
    package.__spec__ = importlib.machinery.ModuleSpec("torchvision", None, is_package=True)
    package.__spec__.submodule_search_locations = [folder]
    sys.modules["torchvision"] = package


def models_module() -> types.ModuleType:
    """``torchvision.models``, imported normally, or from the bare namespace where
    torchvision's compiled ops do not load against this torch."""
    if importlib.util.find_spec("torchvision") is None:
        raise UserInputError(f"torchvision is not installed (the optional extra torchvision): {INSTALL_HINT}")
    try:
        importlib.import_module("torchvision")
    except (RuntimeError, OSError):  # its compiled ops were built for another torch
        _namespace_without_init()
    return importlib.import_module("torchvision.models")


def classifier_names() -> list[str]:
    """Every image classification model torchvision defines, sorted."""
    models = models_module()
    return sorted(models.list_models(module=models))


def build(name: str, num_classes: int = 10, weights_file: str | Path | None = None) -> nn.Module:
    """torchvision's classifier ``name`` with ``num_classes`` outputs, randomly initialised, or
    holding the state dict saved in ``weights_file`` (which must fit it exactly)."""
    models = models_module()
    if name not in models.list_models(module=models):
        raise UserInputError(f"torchvision has no classification model {name!r} "
                             f"(autocompress.models.torchvision_zoo.classifier_names() lists them)")
    model = models.get_model(name, weights=None, num_classes=num_classes, **BUILD_ARGUMENTS.get(name, {}))
    if weights_file is not None:
        path = Path(weights_file)
        if not path.is_file():
            raise UserInputError(f"{path}: weights file not found")
        with loading(path, "torch state dict"):
            saved = torch.load(path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(saved.get("state_dict", saved) if isinstance(saved, dict) else saved)
        except (RuntimeError, TypeError, AttributeError) as error:  # keys or shapes differ, or not a dict
            lines = [line.strip() for line in str(error).strip().splitlines()]
            detail = lines[1] if len(lines) > 1 else lines[0]  # the first key or shape that differs
            raise UserInputError(f"{path}: does not fit torchvision's {name} with {num_classes} classes: "
                                 f"{detail if len(detail) <= 200 else detail[:200] + '...'}") from None
    return model
