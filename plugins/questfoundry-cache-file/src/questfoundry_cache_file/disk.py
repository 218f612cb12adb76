"""``SafeDisk``: how the file cache turns keys and values into diskcache rows, without pickle.

diskcache's own ``Disk`` pickles any key or value that is not bytes, str, int or float, and, on
read, unpickles any row whose ``mode`` column says pickle, whichever ``Disk`` the cache was opened
with (``JSONDisk`` included). A cache directory is data that other processes, and possibly other
people, can write, so a tampered row must never run code. ``SafeDisk`` writes only two kinds of
rows, bytes inline in the database and bytes in a value file, and on read refuses every other kind
by raising :class:`UnreadableEntry`, which the cache turns into a miss.

A value file's name carries the value's length and CRC-32, so a truncated or overwritten file is
refused too, instead of being served as a wrong answer.

A row's ``filename`` is data too, and diskcache both reads and *deletes* files by it: when an entry
is overwritten, deleted, expired, evicted, cleared or pruned, ``Disk.remove`` deletes the named file
and then every parent folder that becomes empty. :func:`value_path` is the one gate for both: only
a name of the shape ``SafeDisk`` writes, under two subfolders that are real folders (not symbolic
links), names a file inside the cache. Any other name (absolute, with ``..``, through a link) is
never opened and never removed; its row is still dropped by whatever operation was dropping it.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
import zlib
from pathlib import Path
from typing import Any

import diskcache
from diskcache.core import MODE_BINARY, MODE_RAW, UNKNOWN

#: what ``SafeDisk.filename`` makes: ``ab/cd/<28 hex>-<length hex>-<crc32 hex>.val``
_VALUE_FILE = re.compile(
    r"[0-9a-f]{2}[/\\][0-9a-f]{2}[/\\][0-9a-f]{28}-([0-9a-f]{1,16})-([0-9a-f]{8})\.val"
)
#: open value files without following a symbolic link where the platform can
_NO_FOLLOW = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)

log = logging.getLogger("questfoundry.cache.file")


def value_path(directory: str, filename: object) -> Path | None:
    """The path of ``filename`` inside ``directory`` if it names a value file there, else None.

    Two ``lstat`` calls and a regular expression: cheap enough for every read of a value file.
    """
    if type(filename) is not str or _VALUE_FILE.fullmatch(filename) is None:
        return None
    first = Path(directory, filename[:2])
    second = first / filename[3:5]
    if first.is_symlink() or second.is_symlink():
        return None
    return second / filename[6:]


def remove_value_file(directory: str, filename: object) -> bool:
    """Delete a value file inside ``directory`` and its two subfolders once empty; nothing else.

    Never climbs above the two subfolders (diskcache's ``os.removedirs`` would). A link in place
    of the file is removed itself, never what it points to. True when the name was acceptable.
    """
    path = value_path(directory, filename)
    if path is None:
        return False
    path.unlink(missing_ok=True)  # already gone: another process removed it first
    for folder in (path.parent, path.parent.parent):
        try:
            folder.rmdir()
        except OSError:  # not empty, or gone
            break
    return True


class UnreadableEntry(Exception):
    """A row or value file ``SafeDisk`` will not read: pickled, of an unknown mode, or damaged."""


class SafeDisk(diskcache.Disk):  # type: ignore[misc]  # diskcache ships no type hints
    """Keys are text or bytes, values are bytes; nothing is ever pickled or unpickled."""

    def put(self, key: object) -> tuple[object, bool]:
        """Key → database column: text and bytes as they are, anything else refused."""
        if type(key) is str:
            return key, True
        if type(key) is bytes:
            return sqlite3.Binary(key), True
        raise TypeError(f"the file cache takes text or bytes keys, not {type(key).__name__}")

    def get(self, key: Any, raw: bool) -> str | bytes:
        """Database column → key; a key stored pickled (``raw`` false) is refused."""
        if not raw:
            raise UnreadableEntry("a pickled key")
        if isinstance(key, (str, bytes)):
            return key
        raise UnreadableEntry(f"a key of type {type(key).__name__}")

    def store(self, value: object, read: bool, key: object = UNKNOWN) -> tuple[Any, ...]:
        """Value → columns: bytes inline when small, in a value file otherwise; nothing else."""
        if read or type(value) is not bytes:
            raise TypeError(f"the file cache stores bytes values, not {type(value).__name__}")
        return super().store(value, read, key=key)  # type: ignore[no-any-return]

    def filename(self, key: object = UNKNOWN, value: object = UNKNOWN) -> tuple[str, str]:
        """diskcache's random name, with the value's length and CRC-32 before ``.val``."""
        name, full_path = super().filename(key, value)
        if type(value) is bytes:
            stamp = f"-{len(value):x}-{zlib.crc32(value):08x}.val"
            name, full_path = name[:-4] + stamp, full_path[:-4] + stamp
        return name, full_path

    def remove(self, file_path: object) -> None:
        """Delete the value file of a dropped row, unless the row names one outside the cache."""
        if not remove_value_file(self._directory, file_path):
            log.warning(
                "file cache %s: a dropped row named %r, not a value file of the cache;"
                " left untouched",
                self._directory,
                file_path,
            )

    def fetch(self, mode: object, filename: object, value: object, read: bool) -> bytes:
        """Columns → value, for the two kinds of row ``store`` writes; any other is refused."""
        if mode == MODE_RAW and type(value) is bytes and not read:
            return value
        if mode == MODE_BINARY and type(filename) is str and value is None and not read:
            return self._read_value_file(filename)
        raise UnreadableEntry(f"a row of mode {mode!r} holding {type(value).__name__}")

    def _read_value_file(self, filename: str) -> bytes:
        path = value_path(self._directory, filename)
        stamp = _VALUE_FILE.fullmatch(filename)
        if path is None or stamp is None:
            raise UnreadableEntry(f"a value file name outside the cache: {filename!r}")
        try:
            with os.fdopen(os.open(path, os.O_RDONLY | _NO_FOLLOW), "rb") as reader:
                data = reader.read()
        except OSError as exc:
            raise UnreadableEntry(f"value file {filename}: {exc.strerror}") from None
        if len(data) != int(stamp[1], 16) or zlib.crc32(data) != int(stamp[2], 16):
            raise UnreadableEntry(f"value file {filename} is truncated or altered")
        return data
