"""How long steps show their progress: a bar on a terminal, plain lines everywhere else.

One place decides. A bar is drawn when stderr is a terminal (tqdm's ``disable=None``);
``AUTOCOMPRESS_PROGRESS=1`` draws it anyway, ``0`` never. A ``Progress`` also logs plain
lines (``autocompress.progress`` at INFO) at each milestone (an epoch, a trial) and at least
every ``LINE_INTERVAL_S`` in between, whatever the terminal: the run's ``search.log`` gets
them, and so does stderr when no bar is drawn there (``lines_on_stderr``), so that a run
started with ``nohup ... > log`` or under a job scheduler shows where it is.
"""

from __future__ import annotations

import logging
import os
import sys
import time

from tqdm import tqdm

LINE_INTERVAL_S = 60.0
"""The longest a ``Progress`` stays silent in the log."""
log = logging.getLogger("autocompress.progress")


def bars_shown() -> bool:
    """Whether progress bars are drawn (on stderr): stderr is a terminal, or forced."""
    forced = os.environ.get("AUTOCOMPRESS_PROGRESS")
    return sys.stderr.isatty() if forced is None else forced != "0"


class _StderrLines(logging.StreamHandler):
    """The handler ``lines_on_stderr`` adds: to ``sys.stderr`` as it is when a line is written
    (a test runner may swap it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def lines_on_stderr() -> None:
    """Where no bar is drawn, send the progress lines to stderr too (once per process)."""
    if bars_shown() or any(isinstance(h, _StderrLines) for h in log.handlers):
        return
    handler = _StderrLines()
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def announce(message: str) -> None:
    """A progress line of its own: a long step starting."""
    log.info("%s", message)


def progress_bar(enabled: bool = True, **options) -> tqdm:
    """A ``tqdm`` bar (``total``, ``desc``, ``unit``, ...) following the project's convention."""
    return tqdm(disable=not enabled or not bars_shown(), dynamic_ncols=True, **options)


def duration(seconds: float) -> str:
    """``seconds`` as ``1h02m``, ``3m05s`` or ``42s``."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Progress:
    """``total`` steps of ``unit`` named ``desc``: a bar where one is shown, and log lines.

    ``advance`` counts steps; ``show`` sets the figures (loss, front size, ...) the bar and the
    lines display, and logs a line if ``milestone`` or ``LINE_INTERVAL_S`` passed since the
    last (never when not ``enabled``). Time left is estimated from the rate of this session's steps, unless the caller
    gives it (``left_s``).
    """

    def __init__(self, desc: str, total: int | None, unit: str, initial: int = 0, enabled: bool = True) -> None:
        self.desc, self.total, self.unit, self.initial, self.enabled = desc, total, unit, initial, enabled
        self.done = initial
        self.started = self.last_line = time.monotonic()
        self.bar = progress_bar(enabled, total=total, initial=initial, desc=desc, unit=unit)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    @property
    def line_due(self) -> bool:
        """Whether the next ``show`` logs a line even without a milestone."""
        return time.monotonic() - self.last_line >= LINE_INTERVAL_S

    @property
    def bar_shown(self) -> bool:
        return not self.bar.disable

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        self.bar.update(steps)

    def left_s(self) -> float | None:
        """Time left at this session's rate so far (None before its first step, or without a total)."""
        if self.total is None or self.done <= self.initial:
            return None
        return (time.monotonic() - self.started) / (self.done - self.initial) * (self.total - self.done)

    def show(self, milestone: bool = False, left_s: float | None = None, **figures: object) -> None:
        if self.bar_shown:
            self.bar.set_postfix({k: v for k, v in figures.items() if v is not None}, refresh=False)
        if self.enabled and (milestone or self.line_due):
            self.line(left_s, **figures)

    def line(self, left_s: float | None = None, **figures: object) -> None:
        """Log one line now: ``desc: done/total unit, figures, time left``."""
        left = self.left_s() if left_s is None else left_s
        parts = [f"{self.done}/{self.total} {self.unit}" if self.total is not None else f"{self.done} {self.unit}"]
        parts += [f"{name.replace('_', ' ')} {value}" for name, value in figures.items() if value is not None]
        parts.append("time left ?" if left is None else f"{duration(left)} left")
        log.info("%s: %s", self.desc, ", ".join(parts))
        self.last_line = time.monotonic()

    def close(self) -> None:
        self.bar.close()
