"""The ops (``OpSignature``) of the MobileNet family: of a built network, and of a whole space.

A built network's ops are found by forward hooks on its units (``ConvBNAct``, squeeze-excite,
a residual block's add, the pool, the classifier); a space's are enumerated from its choices,
each layer's own choices crossed with what shapes it.
"""

from __future__ import annotations

import functools
import itertools

import torch
from torch import nn

from autocompress.candidate import Candidate, LayerPolicy
from autocompress.compress.prune import keep_count
from autocompress.compress.quantize import activation_bits_of, weight_bits_of
from autocompress.hw.kernels import ConvBNAct, SqueezeExcite
from autocompress.hw.ops import (
    BIAS,
    BN,
    BN_RELU,
    FLOAT,
    NONE,
    BitsRule,
    OpSignature,
    conv_signatures,
    linear_signatures,
    rank_of,
)
from autocompress.models.blocks import InvertedResidual, squeeze_channels
from autocompress.models.mobilenet_space import MobileNetSpace, StageArch


@torch.no_grad()
def model_signatures(model: nn.Module, image_shape: tuple[int, ...],
                     rule: BitsRule = FLOAT) -> list[OpSignature]:
    """The kernels ``model`` runs for one image of ``image_shape`` (C,H,W), in order."""
    found: list[OpSignature] = []

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        shape = tuple(inputs[0].shape[1:])
        if isinstance(module, ConvBNAct):
            epilogue = BN_RELU if isinstance(module.act, nn.ReLU) else BN
            found.extend(conv_signatures(module.conv, shape, epilogue, rule))
        elif isinstance(module, SqueezeExcite):
            bits = rule.gate_bits(weight_bits_of(module.reduce), activation_bits_of(module.reduce))
            found.append(OpSignature("se", shape, module.reduce.out_channels, bits=bits))
        elif isinstance(module, InvertedResidual) and module.use_residual:
            found.append(OpSignature("add", tuple(output.shape[1:])))
        elif module is getattr(model, "pool", None):
            found.append(OpSignature("pool", shape))
        elif module is getattr(model, "classifier", None):
            found.extend(linear_signatures(module, shape[0], rule))

    units = [m for m in model.modules() if isinstance(m, (ConvBNAct, SqueezeExcite, InvertedResidual))]
    units += [getattr(model, "pool", None), getattr(model, "classifier", None)]
    handles = [m.register_forward_hook(hook) for m in units if m is not None]
    try:
        model.eval()(torch.zeros((1, *image_shape)))
    finally:
        for handle in handles:
            handle.remove()
    return found


class _Enumerator:
    """All signatures of a space: each layer's own choices crossed with what shapes it."""

    def __init__(self, space: MobileNetSpace, rule: BitsRule) -> None:
        layer = space.choices.layer
        self.bits = rule.classes(space)
        self.gate_bits = self.bits if rule.quantized_se else [None]
        channel = "channel" in layer.sparsity_kind
        self.prune_ratios = sorted(set(layer.sparsity) | {0.0}) if channel else [0.0]
        self.rank_ratios = sorted(set(layer.rank_ratio) | {1.0})
        self.found: set[OpSignature] = set()

    def dense(self, shape: tuple[int, int, int], out: int, kernel: int, stride: int,
              epilogue: str, factorisable: bool, prune: bool) -> set[int]:
        """A conv with its own rank, pruning and bits choices; returns its output widths."""
        kept = {keep_count(out, r) for r in self.prune_ratios} if prune else {out}
        ranks = self.rank_ratios if factorisable else [1.0]
        for ratio, bits, width in itertools.product(ranks, self.bits, kept):
            if ratio < 1.0:
                rank = rank_of(out, shape[0] * kernel**2, ratio)
                mid = (rank, -(-shape[1] // stride), -(-shape[2] // stride))
                self.found.add(OpSignature("conv", shape, rank, kernel, stride, 1, NONE, bits))
                self.found.add(OpSignature("conv", mid, width, 1, 1, 1, epilogue, bits))
            else:
                self.found.add(OpSignature("conv", shape, width, kernel, stride, 1, epilogue, bits))
        return kept

    def block(self, space: MobileNetSpace, in_ch: int, out_ch: int, stride: int, size: int) -> None:
        block = space.choices.block
        out_size = -(-size // stride)
        for ratio, kernel, se in itertools.product(block.expand_ratio, block.kernel_size,
                                                   block.squeeze_excite):
            hidden = in_ch * ratio
            widths = self.dense((in_ch, size, size), hidden, 1, 1, BN_RELU, True, True)
            for width, bits in itertools.product(widths, self.bits):
                self.found.add(OpSignature("conv", (width, size, size), width, kernel, stride,
                                           width, BN_RELU, bits))
                if se:
                    self.found.update(OpSignature("se", (width, out_size, out_size), squeeze_channels(hidden),
                                                  bits=gate) for gate in self.gate_bits)
                for rank_ratio, pbits in itertools.product(self.rank_ratios, self.bits):
                    if rank_ratio < 1.0:
                        rank = rank_of(out_ch, hidden, rank_ratio)
                        shape = (width, out_size, out_size)
                        self.found.add(OpSignature("conv", shape, rank, 1, 1, 1, NONE, pbits))
                        self.found.add(OpSignature("conv", (rank, out_size, out_size), out_ch,
                                                   1, 1, 1, BN, pbits))
                    else:
                        self.found.add(OpSignature("conv", (width, out_size, out_size), out_ch,
                                                   1, 1, 1, BN, pbits))
        if stride == 1 and in_ch == out_ch:
            self.found.add(OpSignature("add", (out_ch, out_size, out_size)))

    def head(self, space: MobileNetSpace, in_ch: int, size: int) -> None:
        net, classes = space.network, space.data.num_classes
        widths = self.dense((in_ch, size, size), net.head_channels, 1, 1, BN_RELU, True, True)
        for width, bits, ratio in itertools.product(widths, self.bits, self.rank_ratios):
            self.found.add(OpSignature("pool", (width, size, size)))
            if ratio < 1.0:
                rank = rank_of(classes, net.head_channels, ratio)
                self.found.add(OpSignature("linear", (width,), rank, epilogue=NONE, bits=bits))
                self.found.add(OpSignature("linear", (rank,), classes, epilogue=BIAS, bits=bits))
            else:
                self.found.add(OpSignature("linear", (width,), classes, epilogue=BIAS, bits=bits))


def space_signatures(space: MobileNetSpace, rule: BitsRule) -> list[OpSignature]:
    """Every distinct signature any candidate of ``space`` can contain, sorted."""
    enumerator = _Enumerator(space, rule)
    net, size = space.network, space.data.image_size
    enumerator.dense((space.data.channels, size, size), net.stem_channels, 3, 1, BN_RELU,
                     False, False)
    in_ch = net.stem_channels
    for stage in net.stages:
        for position in range(max(space.choices.block.depths_for(stage))):
            stride = stage.stride if position == 0 else 1
            enumerator.block(space, in_ch, stage.channels, stride, size)
            size, in_ch = -(-size // stride), stage.channels
    enumerator.head(space, in_ch, size)
    return sorted(enumerator.found)


# --- the ops of a candidate, from its choices alone (no network built) ----------------------

def _dense_ops(shape: tuple[int, int, int], out: int, kernel: int, stride: int, epilogue: str,
               policy: LayerPolicy, rule: BitsRule) -> tuple[list[OpSignature], int]:
    """A conv as ``apply_policy`` leaves it: factorised first (rank from the unpruned layer),
    then its output channels pruned, then quantized; returns its ops and output width."""
    bits = rule.kernel_bits(policy.weight_bits, policy.activation_bits)
    pruned = policy.sparsity > 0 and policy.sparsity_kind == "channel"
    width = keep_count(out, policy.sparsity) if pruned else out
    if policy.rank_ratio < 1.0:
        rank = rank_of(out, shape[0] * kernel**2, policy.rank_ratio)
        mid = (rank, -(-shape[1] // stride), -(-shape[2] // stride))
        return [OpSignature("conv", shape, rank, kernel, stride, 1, NONE, bits),
                OpSignature("conv", mid, width, 1, 1, 1, epilogue, bits)], width
    return [OpSignature("conv", shape, width, kernel, stride, 1, epilogue, bits)], width


@functools.lru_cache(maxsize=65536)
def _block_ops(in_ch: int, out_ch: int, stride: int, size: int, arch: StageArch, expand: LayerPolicy,
               dw: LayerPolicy, se: LayerPolicy, project: LayerPolicy, rule: BitsRule) -> tuple[OpSignature, ...]:
    hidden, out_size = in_ch * arch.expand_ratio, -(-size // stride)
    ops, width = _dense_ops((in_ch, size, size), hidden, 1, 1, BN_RELU, expand, rule)
    ops.append(OpSignature("conv", (width, size, size), width, arch.kernel_size, stride, width, BN_RELU,
                           rule.kernel_bits(dw.weight_bits, dw.activation_bits)))
    if arch.squeeze_excite:
        ops.append(OpSignature("se", (width, out_size, out_size), squeeze_channels(hidden),
                               bits=rule.gate_bits(se.weight_bits, se.activation_bits)))
    bits = rule.kernel_bits(project.weight_bits, project.activation_bits)
    if project.rank_ratio < 1.0:
        rank = rank_of(out_ch, hidden, project.rank_ratio)
        ops += [OpSignature("conv", (width, out_size, out_size), rank, 1, 1, 1, NONE, bits),
                OpSignature("conv", (rank, out_size, out_size), out_ch, 1, 1, 1, BN, bits)]
    else:
        ops.append(OpSignature("conv", (width, out_size, out_size), out_ch, 1, 1, 1, BN, bits))
    if stride == 1 and in_ch == out_ch:
        ops.append(OpSignature("add", (out_ch, out_size, out_size)))
    return tuple(ops)


def _linear_ops(features: int, full_in: int, out: int, policy: LayerPolicy, rule: BitsRule) -> list[OpSignature]:
    bits = rule.kernel_bits(policy.weight_bits, policy.activation_bits)
    if policy.rank_ratio < 1.0:
        rank = rank_of(out, full_in, policy.rank_ratio)
        return [OpSignature("linear", (features,), rank, epilogue=NONE, bits=bits),
                OpSignature("linear", (rank,), out, epilogue=BIAS, bits=bits)]
    return [OpSignature("linear", (features,), out, epilogue=BIAS, bits=bits)]


def candidate_signatures(space: MobileNetSpace, candidate: Candidate, rule: BitsRule) -> list[OpSignature]:
    """The ops ``model_signatures`` finds in the built candidate, computed from its choices.

    Only for policies the family's layers allow (channel pruning where ``channel_prunable``,
    low-rank where ``factorisable``); thousands per second, for screening.
    """
    policy, net, size = candidate.layer_policy, space.network, space.data.image_size
    ops, width = _dense_ops((space.data.channels, size, size), net.stem_channels, 3, 1, BN_RELU,
                            policy("stem.conv"), rule)
    in_ch = width
    for s, (stage, arch) in enumerate(zip(net.stages, candidate.stages, strict=True)):
        for b in range(arch.depth):
            stride, prefix = (stage.stride if b == 0 else 1), f"stages.{s}.{b}"
            ops += _block_ops(in_ch, stage.channels, stride, size, arch, policy(f"{prefix}.expand.conv"),
                              policy(f"{prefix}.dw.conv"), policy(f"{prefix}.se.reduce"),
                              policy(f"{prefix}.project.conv"), rule)
            size, in_ch = -(-size // stride), stage.channels
    head_ops, width = _dense_ops((in_ch, size, size), net.head_channels, 1, 1, BN_RELU, policy("head.conv"), rule)
    ops += head_ops
    ops.append(OpSignature("pool", (width, size, size)))
    return ops + _linear_ops(width, net.head_channels, space.data.num_classes, policy("classifier"), rule)
