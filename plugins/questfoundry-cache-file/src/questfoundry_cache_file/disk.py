"""``SafeDisk``: how the file cache turns keys and values into diskcache rows, without pickle.

diskcache's own ``Disk`` pickles any key or value that is not bytes, str, int or float, and, on
read, unpickles any row whose ``mode`` column says pickle, whichever ``Disk`` the cache was opened
with (``JSONDisk`` included). A cache directory is data that other processes, and possibly other
people, can write, so a tampered row must never run code. ``SafeDisk`` writes only two kinds of
rows, bytes inline in the database and bytes in a value file, and on read refuses every other kind
by raising :class:`UnreadableEntry`, which the cache turns into a miss.

A value file's name carries the value's length and CRC-32, so a truncated or overwritten file is
refused too, instead of being served as a wrong answer; the name pattern also keeps a tampered row
from pointing the cache at a file outside its directory.
"""

from __future__ import annotations

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

    def fetch(self, mode: object, filename: object, value: object, read: bool) -> bytes:
        """Columns → value, for the two kinds of row ``store`` writes; any other is refused."""
        if mode == MODE_RAW and type(value) is bytes and not read:
            return value
        if mode == MODE_BINARY and type(filename) is str and value is None and not read:
            return self._read_value_file(filename)
        raise UnreadableEntry(f"a row of mode {mode!r} holding {type(value).__name__}")

    def _read_value_file(self, filename: str) -> bytes:
        stamp = _VALUE_FILE.fullmatch(filename)
        if stamp is None:
            raise UnreadableEntry(f"a value file name it never writes: {filename!r}")
        try:
            data = (Path(self._directory) / filename).read_bytes()
        except OSError as exc:
            raise UnreadableEntry(f"value file {filename}: {exc.strerror}") from None
        if len(data) != int(stamp[1], 16) or zlib.crc32(data) != int(stamp[2], 16):
            raise UnreadableEntry(f"value file {filename} is truncated or altered")
        return data
