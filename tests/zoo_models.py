"""torchvision classifiers (random weights, 10 classes) named by the zoo tests' spaces."""

from __future__ import annotations

from torch import nn

from autocompress.models.torchvision_zoo import build

SMALL = ("resnet18", "mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_0", "mnasnet0_5", "densenet121",
         "efficientnet_b0", "regnet_y_400mf", "googlenet", "alexnet", "vgg11_bn", "convnext_tiny")


def _builder(name: str):
    def built() -> nn.Module:
        return build(name, num_classes=10)

    built.__name__ = name
    return built


globals().update({name: _builder(name) for name in SMALL})
