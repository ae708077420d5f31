"""Low-rank factorisation by truncated SVD.

A Linear or 1x1 conv becomes two thin layers; a kxk conv becomes kxk (C->r) followed by
1x1 (r->N). The singular values are split evenly (sqrt) between the two factors.
"""

from __future__ import annotations

import torch
from torch import nn


class LowRankConv2d(nn.Sequential):
    """kxk conv (C->r, no bias) then 1x1 conv (r->N, with the original bias)."""


class LowRankLinear(nn.Sequential):
    """Linear (in->r, no bias) then Linear (r->out, with the original bias)."""


def full_rank(module: nn.Module) -> int:
    weight = module.weight
    return min(weight.shape[0], weight[0].numel())


def rank_for(module: nn.Module, ratio: float) -> int:
    return max(1, round(ratio * full_rank(module)))


@torch.no_grad()
def _split(matrix: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    u, s, vh = torch.linalg.svd(matrix.double(), full_matrices=False)
    root = s[:rank].sqrt()
    left = (u[:, :rank] * root).to(matrix.dtype)
    right = (root[:, None] * vh[:rank]).to(matrix.dtype)
    return left, right


@torch.no_grad()
def factorise(module: nn.Module, rank: int) -> nn.Module:
    """Two-layer truncated-SVD replacement of a Linear or non-grouped Conv2d."""
    if isinstance(module, nn.Linear):
        left, right = _split(module.weight, rank)
        first = nn.Linear(module.in_features, rank, bias=False)
        second = nn.Linear(rank, module.out_features, bias=module.bias is not None)
        first.weight.copy_(right)
        second.weight.copy_(left)
        if module.bias is not None:
            second.bias.copy_(module.bias)
        return LowRankLinear(first, second)
    if isinstance(module, nn.Conv2d) and module.groups == 1:
        out_channels = module.out_channels
        left, right = _split(module.weight.reshape(out_channels, -1), rank)
        first = nn.Conv2d(
            module.in_channels, rank, module.kernel_size, module.stride, module.padding,
            module.dilation, bias=False, padding_mode=module.padding_mode,
        )
        second = nn.Conv2d(rank, out_channels, 1, bias=module.bias is not None)
        first.weight.copy_(right.reshape(first.weight.shape))
        second.weight.copy_(left.reshape(second.weight.shape))
        if module.bias is not None:
            second.bias.copy_(module.bias)
        return LowRankConv2d(first, second)
    raise TypeError(f"cannot factorise {type(module).__name__}: only Linear and non-grouped Conv2d")
