"""Dense segmentation of generated shapes: the data, the network, the loss and the metric.

Each 16x16 grey image holds one filled disc or square (random size and place) and a fainter
distractor stroke, over noise; the target is the shape's mask. The network is a small fully
convolutional one; the metric is the intersection over union (IoU) of the predicted mask.
Nothing here knows autocompress: it is what a user brings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

SIZE = 16


def make_shapes(count: int, seed: int) -> TensorDataset:
    """``count`` images (1, SIZE, SIZE) and their masks (1, SIZE, SIZE), fixed by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    images, masks = [], []
    for _ in range(count):
        cy, cx = (torch.randint(3, SIZE - 3, (2,), generator=generator)).tolist()
        radius = float(torch.randint(2, 5, (1,), generator=generator))
        if torch.rand(1, generator=generator) < 0.5:
            mask = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius**2
        else:
            mask = ((ys - cy).abs() <= radius - 1) & ((xs - cx).abs() <= radius - 1)
        row = int(torch.randint(0, SIZE, (1,), generator=generator))
        image = 0.3 * torch.randn(SIZE, SIZE, generator=generator) + mask.float()
        image[row] += 0.5  # a distractor stroke the network must learn to ignore
        images.append(image[None])
        masks.append(mask.float()[None])
    return TensorDataset(torch.stack(images), torch.stack(masks))


def splits(seed: int = 0) -> tuple[TensorDataset, TensorDataset, TensorDataset]:
    """Train, validation and test sets: 600, 200 and 200 images."""
    return make_shapes(600, seed), make_shapes(200, seed + 1), make_shapes(200, seed + 2)


class SegmentationNet(nn.Module):
    """Conv-BN-ReLU stem, a residual block, a wider block, and a 1x1 head giving mask logits."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.block = nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                                   nn.ReLU(), nn.Conv2d(width, width, 3, padding=1, bias=False),
                                   nn.BatchNorm2d(width))
        self.wide = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(2 * width), nn.ReLU())
        self.head = nn.Conv2d(2 * width, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = F.relu(x + self.block(x))
        return self.head(self.wide(x))


def build() -> SegmentationNet:
    return SegmentationNet()


def mask_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, masks)


def iou(model: nn.Module, loader) -> float:
    """Intersection over union of the predicted masks (logit > 0) with the true ones, over the split."""
    device = next(model.parameters(), torch.empty(0)).device
    intersection = union = 0.0
    for images, masks in loader:
        predicted = model(images.to(device)).cpu() > 0
        truth = masks > 0.5
        intersection += float((predicted & truth).sum())
        union += float((predicted | truth).sum())
    return intersection / max(union, 1.0)
