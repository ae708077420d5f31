"""The torchvision networks the example spaces name, randomly initialised, 10 classes.

A space names one as ``network.model: examples/torchvision/models.py:resnet18``. Every
classifier torchvision defines can be named the same way: add a function here that calls
``build`` with its name (``classifier_names()`` lists them).
"""

from __future__ import annotations

from torch import nn

from autocompress.models.torchvision_zoo import build


def resnet18() -> nn.Module:
    return build("resnet18", num_classes=10)


def mobilenet_v3_small() -> nn.Module:
    return build("mobilenet_v3_small", num_classes=10)
