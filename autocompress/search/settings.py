"""What the ``search`` command accepts beyond a run's frozen settings: run names, durations."""

from __future__ import annotations

import re

from autocompress.errors import UserInputError

RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
"""What ``--run`` accepts: one folder directly under the results folder, so no separator,
no ``..``, and no leading '_' (``_base`` holds the base networks) or '.'."""
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$")


def parse_duration(text: str) -> float:
    """Seconds in ``8h``, ``1h30m``, ``90m``, ``45s`` or a plain number of seconds."""
    match = _DURATION.match(text.strip().lower())
    if not text.strip() or match is None or not any(match.groups()):
        raise UserInputError(f"--time-budget: cannot read {text!r} (use e.g. 8h, 1h30m, 90m, 600s)")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if total <= 0:
        raise UserInputError(f"--time-budget: {text!r} leaves no time; give a positive duration (e.g. 8h)")
    return total
