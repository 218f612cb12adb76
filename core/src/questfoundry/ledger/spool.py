"""Append-only JSON-lines files where the ledger keeps paid calls it could not write yet.

Each process appends to a file of its own, named after the process (see
:mod:`questfoundry.ledger.processes`), so no two processes ever write one file and a file's owner is
known without opening it. A line is flushed to disk (``fsync``) before :func:`append` returns, so a
record survives the process being killed a moment later. Only the owner drains its file while it
runs; anyone may drain the file of a process that is gone. Exactly-once draining is the reader's
job (the ledger writes each record's ``id`` in the same transaction as its row).
"""

from __future__ import annotations

import base64
import json
import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from questfoundry.ledger.processes import ProcessName, this_process

SUFFIX = ".jsonl"

_lock = threading.Lock()


def _reset_lock() -> None:
    global _lock  # noqa: PLW0603 - a lock held by another thread at fork is never released
    _lock = threading.Lock()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reset_lock)


def folder_of(ledger: Path) -> Path:
    """The spool folder that sits beside ``ledger``."""
    return ledger.with_name(ledger.name + ".spool")


def file_of(folder: Path, owner: ProcessName) -> Path:
    name = f"{owner.host}\0{owner.pid}\0{owner.started}".encode()
    return folder / (base64.urlsafe_b64encode(name).decode().rstrip("=") + SUFFIX)


def owner_of(path: Path) -> ProcessName | None:
    """The process that writes ``path``, or None for a file this module did not name."""
    stem = path.name.removesuffix(SUFFIX)
    try:
        host, pid, started = base64.urlsafe_b64decode(stem + "=" * (-len(stem) % 4)).split(b"\0")
        return ProcessName(host.decode(), int(pid), started.decode())
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None


@contextmanager
def locked() -> Iterator[None]:
    """Hold while appending to or draining this process's file, so neither sees half the other."""
    with _lock:
        yield


def append(folder: Path, record: Mapping[str, Any]) -> Path:
    """Add ``record`` to this process's file, on disk before returning; raises ``OSError``."""
    path = file_of(folder, this_process())
    line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
    created = not path.exists()
    folder.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(descriptor, line)
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    if created:
        _sync_folder(folder)
    return path


def files(folder: Path) -> list[tuple[Path, ProcessName]]:
    """Every spool file in ``folder`` with the process that writes it."""
    if not folder.is_dir():
        return []
    found = []
    for path in sorted(folder.glob("*" + SUFFIX)):
        owner = owner_of(path)
        if owner is not None:
            found.append((path, owner))
    return found


def read(path: Path) -> list[dict[str, Any]]:
    """The records of ``path``; a line cut short by a crash mid-write (never acknowledged) is
    skipped."""
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    records = []
    for line in lines:
        with suppress(ValueError):
            records.append(json.loads(line))
    return records


def remove(path: Path) -> None:
    with suppress(FileNotFoundError):
        path.unlink()


def _sync_folder(folder: Path) -> None:
    """Make the new file's name durable too (POSIX; a no-op where folders cannot be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(descriptor)
    finally:
        os.close(descriptor)
