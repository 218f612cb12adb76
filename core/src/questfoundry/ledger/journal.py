"""The write-ahead journal of paid calls: what a crash must not lose, written before it happens.

Before a request is sent, one line (an *intent*: provider, model, estimated tokens and cost) is
appended to a file this ledger alone writes; the reply appends the call's row, which settles it.
The ledger writes rows to SQLite later, in batches (off the caller's path), and records how far it
got (:class:`Progress`) in the same transactions. A line is one ``write`` to a file opened for
appending, so it survives the process being killed the moment after, without an ``fsync`` (as
SQLite's WAL in ``synchronous=NORMAL``); a power loss may lose the last lines, as it may lose the
last commits.

- **Each journal has one owner.** Files are named after the process (see
  :mod:`questfoundry.ledger.processes`) and the ledger instance: ``<name>.lock`` and segments
  ``<name>.<n>.jsonl``. The owner holds an exclusive ``flock`` on the lock file while it runs, so
  the kernel releases it when the process dies, even by ``kill -9``, and a reused pid changes
  nothing. Only a journal whose lock is free is settled by another ledger (which takes the lock
  while it does); where ``flock`` does not exist, the process must be gone (or, on another host,
  its journal older than ``stale_after``).
- **What a dead journal leaves**: every row not yet written, and every intent without a row or a
  ``void``, which becomes an *unconfirmed* row at its estimate (the provider may have served
  it). Exactly once: a journal's progress (every call numbered below ``below``, and those listed
  in ``above``, are in the database) is written in the transaction of the rows it counts.
- **Bounded files.** A segment is closed at :data:`SEGMENT_BYTES` and removed once every call in
  it is written; a ledger closed with everything written removes its files.

Lines are JSON arrays: ``["i", n, time, provider, model, role, run_id, input_tokens,
output_tokens, cost, hold]`` (intent), ``["r", n, hold, *row]`` (row), ``["v", n]`` (void: failed
before any answer). ``cost`` is pico-dollars (or null); ``hold`` the id of a budget hold kept in
the ledger's own file (or null), dropped with the row.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from questfoundry.ledger.processes import ProcessName, is_gone, this_process

if sys.platform != "win32":  # without flock (Windows), liveness comes from the process's name
    import fcntl

log = logging.getLogger(__name__)

SEGMENT_BYTES = 1 << 20
LOCK = ".lock"
SEGMENT = ".jsonl"

_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def folder_of(ledger: Path) -> Path:
    """The journal folder beside the ledger file ``ledger``."""
    return ledger.with_name(ledger.name + ".journal")


def name_for(owner: ProcessName) -> str:
    """A new journal's name: the owner process, and a part that tells its ledgers apart."""
    who = base64.urlsafe_b64encode(f"{owner.host}\0{owner.pid}\0{owner.started}".encode())
    return f"{who.decode().rstrip('=')}-{uuid.uuid4().hex[:8]}"


def owner_of(name: str) -> ProcessName | None:
    """The process a journal ``name`` belongs to, or None for a name this module did not make."""
    who = name.rpartition("-")[0]
    try:
        host, pid, started = base64.urlsafe_b64decode(who + "=" * (-len(who) % 4)).split(b"\0")
        return ProcessName(host.decode(), int(pid), started.decode())
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None


class Progress:
    """Which calls of one journal are settled: written to the database, or void.

    Calls are numbered in the order they begin and settle in any order: ``below`` is the first
    number not yet settled, ``above`` the settled ones beyond it (a handful: the calls that
    finished while an earlier one was still in flight).
    """

    def __init__(self, below: int = 0, above: Iterable[int] = ()) -> None:
        self.below = below
        self.above = set(above)
        self._lock = threading.Lock()

    def done(self, numbers: Iterable[int]) -> None:
        with self._lock:
            self.below, self.above = self._advance(numbers)

    def preview(self, numbers: Iterable[int]) -> tuple[int, str]:
        """What :meth:`done` would make of ``numbers``, as stored: ``below`` and ``above``."""
        with self._lock:
            below, above = self._advance(numbers)
        return below, ",".join(map(str, sorted(above)))

    def settled(self, number: int) -> bool:
        return number < self.below or number in self.above

    def _advance(self, numbers: Iterable[int]) -> tuple[int, set[int]]:
        below, above = self.below, self.above | set(numbers)
        while below in above:
            above.discard(below)
            below += 1
        return below, above

    @classmethod
    def stored(cls, below: int, above: str) -> Progress:
        return cls(below, (int(number) for number in above.split(",") if number))


class Journal:
    """The journal one ledger appends to; files are made on the first line."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = name_for(this_process())
        self.progress = Progress()
        self._lock = threading.Lock()
        self._next = 0
        self._holder: int | None = None  # the lock file, held while this journal lives
        self._segment: int | None = None  # the open segment's descriptor
        self._size = 0
        self._index = 0  # the next segment's
        self._segments: list[tuple[Path, int]] = []  # (file, highest number in it), oldest first
        self._broken = False

    # ------------------------------------------------------------------ writing

    def intend(self, fields: Sequence[Any]) -> int:
        """Append an intent (the fields after its number); its number."""
        with self._lock:
            number = self._number()
            self._append(_ENCODE(["i", number, *fields]), number)
        return number

    def settle(self, number: int | None, hold: str | None, row: Sequence[Any]) -> int:
        """Append the row of call ``number`` (None: a call with no intent); the call's number."""
        with self._lock:
            if number is None:
                number = self._number()
            self._append(_ENCODE(["r", number, hold, *row]), number)
        return number

    def void(self, number: int) -> None:
        """Append that call ``number`` failed before any answer: nothing to record."""
        with self._lock:
            self._append(_ENCODE(["v", number]), number)

    @property
    def numbered(self) -> int:
        """How many calls this journal has numbered."""
        return self._next

    def retire(self) -> None:
        """Remove the closed segments whose every call is settled (see :attr:`progress`)."""
        with self._lock:
            while len(self._segments) > 1 and self.progress.below > self._segments[0][1]:
                path, _ = self._segments.pop(0)
                with suppress(OSError):
                    path.unlink()

    def close(self, *, remove: bool) -> None:
        """Close the files (releasing the lock); with ``remove``, delete them first."""
        with self._lock:
            if remove:
                for path, _ in self._segments:
                    with suppress(OSError):
                        path.unlink()
                with suppress(OSError):
                    (self.folder / (self.name + LOCK)).unlink()
            self._close_files()
            self._segments = []

    def forked(self) -> None:
        """In a forked child: a journal of its own (closing our copies of the parent's files
        keeps the parent's lock)."""
        self._lock = threading.Lock()
        self._close_files()
        self.name = name_for(this_process())
        self.progress = Progress()
        self._next, self._size, self._index, self._segments, self._broken = 0, 0, 0, [], False

    # ------------------------------------------------------------------ internals

    def _number(self) -> int:
        number = self._next
        self._next += 1
        return number

    def _append(self, text: str, number: int) -> None:
        line = (text + "\n").encode()
        try:
            if self._segment is None or self._size + len(line) > SEGMENT_BYTES:
                self._open_segment()
            assert self._segment is not None
            os.write(self._segment, line)
        except OSError as exc:
            if not self._broken:
                self._broken = True
                log.warning(
                    "cost ledger journal %s cannot be written (%s): paid calls are recorded, "
                    "but one in flight when this process dies is lost",
                    self.folder,
                    exc,
                )
            return
        self._size += len(line)
        path, highest = self._segments[-1]
        if number > highest:
            self._segments[-1] = (path, number)

    def _open_segment(self) -> None:
        if self._holder is None:
            self._holder = self._hold()
        path = self.folder / f"{self.name}.{self._index}{SEGMENT}"
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        if self._segment is not None:
            os.close(self._segment)
        self._segment, self._size = descriptor, 0
        self._segments.append((path, -1))
        self._index += 1

    def _hold(self) -> int:
        """Make the lock file, locked before it bears its name: no one sees it unlocked."""
        self.folder.mkdir(parents=True, exist_ok=True)
        making = self.folder / (self.name + LOCK + ".new")
        holder = os.open(making, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            if sys.platform != "win32":
                fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
            making.replace(self.folder / (self.name + LOCK))
        except OSError:
            os.close(holder)
            raise
        return holder

    def _close_files(self) -> None:
        for descriptor in (self._segment, self._holder):
            if descriptor is not None:
                with suppress(OSError):
                    os.close(descriptor)
        self._segment = self._holder = None


# ----------------------------------------------------------------------------- left behind


@dataclass
class Intent:
    """A paid call that began; ``row`` is set once it answered, ``void`` once it failed."""

    fields: list[Any]
    row: list[Any] | None = None
    hold: str | None = None
    void: bool = False


class Leftover:
    """A journal whose owner is gone, locked by this process while it is settled."""

    def __init__(self, folder: Path, name: str, holder: int | None) -> None:
        self.folder = folder
        self.name = name
        self._holder = holder

    def calls(self) -> dict[int, Intent]:
        """Every call the journal names, by number; a line cut short by the crash is skipped."""
        found: dict[int, Intent] = {}
        for path in self.segments():
            try:
                lines = path.read_bytes().splitlines()
            except OSError:
                continue
            for line in lines:
                with suppress(ValueError, TypeError, IndexError):
                    _read(json.loads(line), found)
        return found

    def segments(self) -> list[Path]:
        found = self.folder.glob(f"{self.name}.*{SEGMENT}")
        return sorted(found, key=lambda path: int(path.name.split(".")[-2]))

    def remove(self) -> None:
        for path in self.segments():
            with suppress(OSError):
                path.unlink()
        with suppress(OSError):
            (self.folder / (self.name + LOCK)).unlink()

    def release(self) -> None:
        if self._holder is not None:
            os.close(self._holder)
            self._holder = None


def _read(line: list[Any], found: dict[int, Intent]) -> None:
    kind, number = line[0], int(line[1])
    call = found.get(number)
    if kind == "i":
        if call is None:
            found[number] = Intent(line[2:])
        else:
            call.fields = line[2:]
    elif kind == "r":
        call = found.setdefault(number, Intent([]))
        call.hold, call.row = line[2], line[3:]
    elif kind == "v":
        found.setdefault(number, Intent([])).void = True


def names(folder: Path) -> set[str]:
    """Every journal in ``folder``, by name."""
    try:
        files = [path.name for path in folder.iterdir()]
    except OSError:
        return set()
    found = set()
    for file in files:
        if file.endswith(LOCK):
            found.add(file.removesuffix(LOCK))
        elif file.endswith(SEGMENT):
            found.add(file.removesuffix(SEGMENT).rpartition(".")[0])
    return found


def left_behind(folder: Path, mine: str, stale_after: float) -> Iterator[Leftover]:
    """The journals in ``folder`` whose owner is gone, each locked while the caller settles it
    (release it with :meth:`Leftover.release`)."""
    for name in sorted(names(folder) - {mine}):
        owner = owner_of(name)
        if owner is None:
            continue
        if sys.platform == "win32":  # pragma: no cover - without flock
            gone = is_gone(owner)
            if gone or (gone is None and _age(folder, name) > stale_after):
                yield Leftover(folder, name, None)
            continue
        holder = _take(folder / (name + LOCK))
        if holder is not None:  # else its owner runs, or another ledger is settling it now
            yield Leftover(folder, name, holder)


def _take(path: Path) -> int | None:
    """A descriptor holding ``path``'s lock, or None when another holds it (or it is gone)."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(descriptor).st_ino != path.stat().st_ino:
            raise FileNotFoundError(path)  # removed by whoever settled it before us
    except OSError:
        os.close(descriptor)
        return None
    return descriptor


def _age(folder: Path, name: str) -> float:  # pragma: no cover - without flock
    newest = 0.0
    for path in folder.glob(f"{name}.*"):
        with suppress(OSError):
            newest = max(newest, path.stat().st_mtime)
    return time.time() - newest
