"""Starting or joining Ray, and cleaning up what a killed driver's local Ray left behind.

A local Ray started by ``ray.init`` outlives a driver killed with ``kill -9`` in part (its
agent processes are re-parented and keep running), so each run records the processes
of its local Ray, and the next driver on the same run kills those still alive.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from pathlib import Path

import ray

from autocompress.errors import UserInputError

log = logging.getLogger(__name__)


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks) of a live process, from /proc."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[19])


def _descendants(root: int) -> dict[int, int]:
    """Every live descendant of ``root``: pid -> start time."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (stat := _stat(int(entry.name))) is not None:
            table[int(entry.name)] = stat
    found: dict[int, int] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, (ppid, start) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = start
                frontier.append(pid)
    return found


def kill_leftovers(record: Path) -> int:
    """Kill the recorded local-Ray processes of a previous driver that are still alive."""
    if not record.is_file():
        return 0
    killed = 0
    for pid, start in json.loads(record.read_text()).items():
        stat = _stat(int(pid))
        if stat is not None and stat[1] == start:  # same process, not a recycled pid
            os.kill(int(pid), signal.SIGKILL)
            killed += 1
    record.unlink()
    if killed:
        log.info("killed %d processes left by the previous driver's local Ray", killed)
    return killed


def start(address: str | None, cpus: int, record: Path) -> bool:
    """Join the cluster at ``address`` or start a local Ray with at least ``cpus`` CPUs (what
    the workers reserve; fewer cores than that are shared); True if this call started it.

    A Ray already initialised in this process (a notebook, a test) is used as it is.
    """
    kill_leftovers(record)
    if ray.is_initialized():
        return False
    quiet = {"logging_level": logging.WARNING, "log_to_driver": False}
    if address:
        try:
            ray.init(address=address, **quiet)
        except (ConnectionError, RuntimeError) as error:
            raise UserInputError(f"--address {address}: cannot join the Ray cluster ({str(error).splitlines()[0]}); "
                                 "a cluster started by 'ray start' uses token authentication: export "
                                 "RAY_AUTH_MODE=token with its token in ~/.ray/auth_token or RAY_AUTH_TOKEN") from None
        return True
    ray.init(address="local", num_cpus=max(cpus, os.cpu_count() or 1), include_dashboard=False, **quiet)
    return True


def record_local_processes(record: Path) -> None:
    """Remember this driver's local-Ray processes, for ``kill_leftovers`` after a crash."""
    record.write_text(json.dumps({str(pid): start for pid, start in _descendants(os.getpid()).items()}))


def stop(started: bool, record: Path) -> None:
    if started:
        ray.shutdown()
    record.unlink(missing_ok=True)
