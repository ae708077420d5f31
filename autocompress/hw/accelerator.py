"""A modelled bit-serial accelerator in the spirit of BitFusion (Sharma et al., ISCA 2018),
the device HAQ (Wang et al., CVPR 2019) searches bit-widths for.

BitFusion's array is made of 2-bit x 2-bit "BitBricks" that fuse into wider multipliers:
a w-bit x a-bit multiply occupies (w/2)(a/2) bricks, with w and a padded to 2, 4, 8 or
16 bits. Per op signature, for a batch of ``B`` images:

    compute_cycles = B * MACs * ceil2(w)/2 * ceil2(a)/2 / BRICKS
    memory_cycles  = (weights * w + B * (inputs + outputs) * a) / 8 / BYTES_PER_CYCLE
    latency_ms     = max(compute_cycles, memory_cycles) / CLOCK_HZ * 1000 + OP_OVERHEAD

(a roofline: the slower of the array and DRAM bounds the op). Float layers run at 16 bits,
BitFusion's widest mode. Element-wise ops (add, pool, the gate of squeeze-excite) and
every fixed op (pooling, activations, norms, concat, multiplies, copies: ``hw.fixed_ops``)
run at 16 bits on a vector unit of ``VECTOR_LANES`` lanes, one operation per input element,
reading every input and writing an output of the size of their first (of a concat: of
all). Latencies are modelled, not measured: the profile says so in ``device.kind``.
"""

from __future__ import annotations

import math

from autocompress.hw.ops import BitsRule, OpSignature
from autocompress.hw.profile import SCHEMA_VERSION, Device, Entry, HardwareProfile
from autocompress.hw.runtimes.registry import Runtime, register_runtime
from autocompress.hw.signatures import space_signatures
from autocompress.space import SearchSpace

NATIVE_BITS = (2, 4, 8, 16)
BRICKS = 512 * 16
CLOCK_HZ = 500e6
BYTES_PER_CYCLE = 16
VECTOR_LANES = 64
OP_OVERHEAD_MS = 0.0005
WIDE = 16
RULE = BitsRule(weight=NATIVE_BITS, activation=NATIVE_BITS, follow=False)


@register_runtime
class BitFusionModel(Runtime):
    """The modelled accelerator: any of its bit-widths runs natively, nothing is fused."""

    name = "bitfusion-model"
    default_device = "bitfusion"
    modelled = True

    @property
    def bits_rule(self) -> BitsRule:
        return RULE


def _io_elements(signature: OpSignature) -> int:
    inputs = math.prod(signature.shape)
    if signature.op in ("conv", "linear"):
        return inputs + math.prod(signature.out_shape)
    return 2 * inputs + sum(math.prod(shape) for shape in signature.inputs)


def modelled_ms(signature: OpSignature, batch_size: int) -> float:
    """Latency of one op signature on the modelled accelerator (see module docstring)."""
    weight_bits, activation_bits = signature.bits or (WIDE, WIDE)
    memory_bits = (signature.weight_count() * weight_bits
                   + batch_size * _io_elements(signature) * activation_bits)
    memory = memory_bits / 8 / BYTES_PER_CYCLE
    if signature.op in ("conv", "linear"):
        compute = batch_size * signature.macs() * (weight_bits / 2) * (activation_bits / 2) / BRICKS
    else:
        compute = batch_size * signature.macs() / VECTOR_LANES
    return max(compute, memory) / CLOCK_HZ * 1000.0 + OP_OVERHEAD_MS


def modelled_profile(space: SearchSpace, space_path: str, name: str, batch_size: int
                     ) -> HardwareProfile:
    """A complete table for ``space`` on the modelled accelerator."""
    entries = {s.key: Entry(median_ms=modelled_ms(s, batch_size),
                             min_ms=modelled_ms(s, batch_size), spread_ms=0.0, samples=1)
               for s in space_signatures(space, RULE)}
    device = Device.on_this_host(name, "modelled", BitFusionModel.name, 1, batch_size)
    constants = {"formula": "max(B*MACs*ceil2(w)/2*ceil2(a)/2/bricks, "
                            "(weights*w + B*io*a)/8/bytes_per_cycle)/clock + overhead",
                 "bricks": BRICKS, "clock_hz": CLOCK_HZ, "bytes_per_cycle": BYTES_PER_CYCLE,
                 "vector_lanes": VECTOR_LANES, "op_overhead_ms": OP_OVERHEAD_MS}
    return HardwareProfile(schema_version=SCHEMA_VERSION, device=device, space=space_path,
                           native_weight_bits=list(NATIVE_BITS),
                           native_activation_bits=list(NATIVE_BITS),
                           activation_bits_follow_weights=False, native_sparsity=["channel"],
                           model=constants, entries=entries, statistic="median")
