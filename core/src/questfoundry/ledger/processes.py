"""Which process made a record, and whether that process still runs.

Budget holds and spooled ledger rows name their process, so whatever a killed process left behind
is recognised at the next check instead of an hour later. A process is named by host, pid and a
start marker (Linux: boot id and the process's start time), so a pid reused after a crash or a
reboot is not mistaken for the old process. Only processes of this host can be checked: for
another host (or where nothing can be read, such as Windows) the answer is "cannot tell" and
callers fall back to a time limit.
"""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path


@dataclass(frozen=True, slots=True)
class ProcessName:
    """A process as it can be recognised later: ``started`` is empty where it cannot be read."""

    host: str
    pid: int
    started: str


@cache
def _host() -> str:
    return socket.gethostname()


@cache
def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _started(pid: int) -> str | None:
    """The start marker of ``pid``; None when no such process runs, "" when unreadable."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    # the command name (field 2) may hold spaces and parentheses: fields resume after the last ")"
    fields = stat.rpartition(")")[2].split()
    if fields[0] in ("Z", "X"):
        return None  # killed, not yet reaped by its parent: it runs no more
    return f"{_boot_id()}:{fields[19]}"


def process_named(pid: int) -> ProcessName:
    """Process ``pid`` of this host as it runs now."""
    return ProcessName(_host(), pid, _started(pid) or "")


def this_process() -> ProcessName:
    """The calling process (named afresh after ``fork``, which gives the child a new pid)."""
    return _this(os.getpid())


@cache
def _this(pid: int) -> ProcessName:
    return process_named(pid)


def is_gone(process: ProcessName) -> bool | None:
    """True when ``process`` surely no longer runs, False when it does, None when unknown."""
    if process.host != _host() or sys.platform == "win32":
        return None  # os.kill on Windows would terminate the process, not probe it
    if process.pid == os.getpid():
        return process != this_process()
    if process.started:
        started = _started(process.pid)
        if started is None:
            return True
        if started:
            return started != process.started
    try:
        os.kill(process.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
