"""Latency prediction from a hardware profile: sum of LUT entries, then the correction.

Every function predicts one statistic of the network's timed calls (``median``: typical,
``min``: best case), the profile's default unless one is named; the LUT figures and the
correction used are that statistic's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from autocompress.candidate import Candidate
from autocompress.errors import MissingSignaturesError, UserInputError
from autocompress.hw.ops import BitsRule, OpSignature
from autocompress.hw.profile import HardwareProfile, Statistic
from autocompress.hw.signatures import candidate_signatures, missing, space_signatures
from autocompress.space import SearchSpace

SHOWN_MISSING = 5


def profile_command(profile: HardwareProfile, space: SearchSpace) -> str:
    """The command that (re)measures ``profile`` for ``space``, keeping its entries."""
    space_path = profile.space if Path(profile.space).stem == space.name else f"<{space.name}.yaml>"
    device = profile.device
    return (f"autocompress profile {space_path} --runtime {device.runtime} "
            f"--device {device.name} --threads {device.threads} "
            f"--batch-size {device.batch_size} --out hw_profiles/{device.name}.json")


def lut_sum(signatures: Sequence[OpSignature], profile: HardwareProfile,
            space: SearchSpace, statistic: Statistic | None = None) -> float:
    """Sum of the table's latencies (of ``statistic``) over ``signatures`` (ms per batch)."""
    absent = list(missing(signatures, profile.entries))
    if absent:
        raise MissingSignaturesError(_missing_text(absent, profile, space))
    return sum(profile.latency(s.key, statistic) for s in signatures)


def _missing_text(absent: Sequence[OpSignature], profile: HardwareProfile, space: SearchSpace) -> str:
    shown = ", ".join(s.key for s in absent[:SHOWN_MISSING])
    more = f" and {len(absent) - SHOWN_MISSING} more" if len(absent) > SHOWN_MISSING else ""
    return (f"profile '{profile.device.name}' has no entry for {len(absent)} op signature(s): "
            f"{shown}{more}; measure them with: {profile_command(profile, space)}")


def check_covers(profile: HardwareProfile, space: SearchSpace, origin: Path) -> None:
    """Fail, naming the profile's file ``origin``, unless it has an entry for every op signature
    a candidate of ``space`` can contain (so no trial of a search fails for want of one)."""
    absent = list(missing(space_signatures(space, BitsRule.of(profile)), profile.entries))
    if absent:
        raise MissingSignaturesError(f"{origin}: {_missing_text(absent, profile, space)}")


def precision_transitions(signatures: Sequence[OpSignature]) -> int:
    """Switches between float and int8 kernels along the network. Each is a quantize or
    dequantize node (and a layout transpose) that no entry times: a float entry takes and
    gives float tensors, an int8 one uint8 tensors; the correction fits what one costs."""
    kernels = [s.quantized for s in signatures if s.op in ("conv", "linear")]
    return sum(a != b for a, b in zip(kernels, kernels[1:], strict=False))


def elided_reorders(signatures: Sequence[OpSignature], profile: HardwareProfile) -> float:
    """Million elements (per batch) of the tensors between consecutive kernels of which the
    first, timed alone, converted its output out of the runtime's blocked layout and the
    second its input into it: the network keeps such a tensor blocked, so the two entries
    timed a pair of reorders it never runs. The correction fits what one element costs."""
    entries = profile.entries
    elements = sum(math.prod(a.out_shape) for a, b in zip(signatures, signatures[1:], strict=False)
                   if entries[a.key].reorders_output and entries[b.key].reorders_input)
    return elements * profile.device.batch_size / 1e6


def correction_terms(signatures: Sequence[OpSignature], profile: HardwareProfile, space: SearchSpace,
                     statistic: Statistic | None = None) -> tuple[float, int, int, float, float]:
    """What the correction weighs for one network, in ``Correction.WEIGHTS`` order: the LUT
    sum (of ``statistic``), the op count, the precision switches, the elided reorders and,
    for a statistic other than the minimum, the sum of the entries' minima (else 0)."""
    statistic = statistic or profile.statistic
    typical = lut_sum(signatures, profile, space, statistic)  # checks every entry is there
    best_case = 0.0 if statistic == "min" else sum(profile.latency(s.key, "min") for s in signatures)
    return typical, len(signatures), precision_transitions(signatures), elided_reorders(signatures, profile), best_case


def corrected(terms: Sequence[float], profile: HardwareProfile, statistic: Statistic | None = None) -> float:
    """Apply the profile's correction fitted for ``statistic`` (if any) to a network's terms
    (``correction_terms``; the LUT sum alone without a correction)."""
    statistic = statistic or profile.statistic
    if statistic not in profile.predicts:
        raise UserInputError(f"profile '{profile.device.name}' predicts {', '.join(profile.predicts)} only, "
                             f"not {statistic}: profile the device again to fit it")
    fit = profile.corrections.get(statistic)
    return terms[0] if fit is None else fit.apply(terms)


def predict(candidate: Candidate, profile: HardwareProfile, space: SearchSpace,
            statistic: Statistic | None = None) -> float:
    """Predicted latency of ``candidate`` on ``profile``'s device, in ms per batch of
    ``profile.device.batch_size`` images, as ``statistic`` (default: the profile's) of timed calls.

    Raises ``MissingSignaturesError`` naming the missing signatures and the command that
    profiles them.
    """
    signatures = candidate_signatures(space, candidate, BitsRule.of(profile))
    return corrected(correction_terms(signatures, profile, space, statistic), profile, statistic)
