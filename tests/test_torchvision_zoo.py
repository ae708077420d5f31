"""torchvision's classifiers loaded through ``torchvision_zoo`` (whether or not its compiled ops
load against this torch), built with random weights or a user's state dict, and the
examples' spaces that name them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from autocompress.errors import UserInputError
from autocompress.models.family import family_of
from autocompress.models.space_file import load_space

pytestmark = pytest.mark.skipif(importlib.util.find_spec("torchvision") is None,
                                reason="torchvision is not installed (the optional extra '.[torchvision]')")

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "torchvision"


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_builds_and_runs_at_64x64(name):
    from autocompress.models.torchvision_zoo import build, classifier_names

    assert name in classifier_names()
    torch.manual_seed(0)
    model = build(name, num_classes=10).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 64, 64))
    assert logits.shape == (2, 10) and torch.isfinite(logits).all()


def test_googlenet_builds_without_auxiliary_outputs():
    from autocompress.models.torchvision_zoo import build

    model = build("googlenet").train()  # in training mode its auxiliary classifiers would return a tuple
    assert isinstance(model(torch.randn(2, 3, 64, 64)), torch.Tensor)


def test_weights_file_is_loaded_and_checked(tmp_path):
    from autocompress.models.torchvision_zoo import build

    trained = build("mobilenet_v3_small").eval()
    path = tmp_path / "weights.pt"
    torch.save(trained.state_dict(), path)
    loaded = build("mobilenet_v3_small", weights_file=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(loaded(x), trained(x))
    with pytest.raises(UserInputError, match=r"weights.pt: does not fit torchvision's mobilenet_v3_small with 5 "
                                             r"classes: size mismatch for classifier.3.weight"):
        build("mobilenet_v3_small", num_classes=5, weights_file=path)
    with pytest.raises(UserInputError, match="torchvision has no classification model 'resnet19'"):
        build("resnet19")


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small"])
def test_example_space_builds_its_network(name):
    space = load_space(EXAMPLES / f"space_{name}.yaml")
    model = family_of(space).build([]).eval()
    with torch.no_grad():
        assert model(torch.randn(space.input_shape(2))).shape == (2, space.data.num_classes)
