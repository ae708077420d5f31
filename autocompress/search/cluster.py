"""Starting or joining Ray, and cleaning up what a killed driver's local Ray left behind.

A local Ray started by ``ray.init`` outlives a driver killed with ``kill -9`` in part (its
agent processes are re-parented and keep running), so each run records the processes
of its local Ray, and the next driver on the same run kills those still alive. The
driver records itself before it starts Ray: if it is killed while Ray is still starting
(before the processes are listed), the next driver finds them by their session folder,
which Ray names after the pid of the driver that started it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
from pathlib import Path

import ray

from autocompress.errors import UserInputError
from autocompress.files import write_atomic

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


def _session_processes(driver: int, since: int) -> dict[int, int]:
    """Live processes of a local Ray started by the dead process ``driver`` (started at
    ``since``): their command lines name Ray's session folder ``session_<date>_<driver pid>``."""
    session = re.compile(rf"/session_[0-9_-]+_{driver}(?![0-9])".encode())
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        stat = _stat(int(entry.name))
        if session.search(command) and stat is not None and stat[1] >= since:
            found[int(entry.name)] = stat[1]
    return found


def kill_leftovers(record: Path) -> int:
    """Kill the local-Ray processes of a previous driver that are still alive: those it
    listed, or if it died before listing them, those of its Ray session."""
    if not record.is_file():
        return 0
    try:
        data = json.loads(record.read_text())
        processes = {int(pid): int(start) for pid, start in data.get("processes", {}).items()}
        driver, since = data["driver"]
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("%s: unreadable, ignored (no Ray processes of a previous driver killed)", record)
        record.unlink()
        return 0
    if _stat(driver) is None:  # gone; a live pid (the same driver, or a recycled one) is left alone
        processes |= _session_processes(driver, since)
    killed = 0
    for pid, start in processes.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == start:  # same process, not a recycled pid
            with contextlib.suppress(ProcessLookupError):  # it may end by itself meanwhile
                os.kill(pid, signal.SIGKILL)
                killed += 1
    record.unlink()
    if killed:
        log.info("killed %d processes left by the previous driver's local Ray", killed)
    return killed


def check_address(address: str) -> None:
    """Fail at once with one line unless something answers at ``address`` (HOST:PORT): Ray
    itself retries an unreachable address for a minute and more."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserInputError(f"--address {address}: expected HOST:PORT of a Ray head, with a port in 1..65535")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as error:
        raise UserInputError(f"--address {address}: nothing answers there ({error.strerror or error}); "
                             "is the cluster started ('ray start --head')?") from None


def _record(record: Path, processes: dict[int, int]) -> None:
    """This driver (pid, start time) and the local-Ray processes it has listed so far."""
    driver = os.getpid()
    write_atomic(record, json.dumps({"driver": [driver, _stat(driver)[1]],
                                     "processes": {str(pid): start for pid, start in processes.items()}}))


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
    record_driver(record)
    ray.init(address="local", num_cpus=max(cpus, os.cpu_count() or 1), include_dashboard=False, **quiet)
    return True


def record_driver(record: Path) -> None:
    """Remember this driver before it starts a local Ray, for ``kill_leftovers`` if it dies
    before ``record_local_processes``."""
    _record(record, {})


def record_local_processes(record: Path) -> None:
    """Remember this driver's local-Ray processes, for ``kill_leftovers`` after a crash."""
    _record(record, _descendants(os.getpid()))


def stop(started: bool, record: Path) -> None:
    if started:
        ray.shutdown()
    record.unlink(missing_ok=True)
