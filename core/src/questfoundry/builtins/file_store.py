"""Built-in state store ``file``: one JSON document per key under ``state.path``.

A write goes to a temporary file in the same folder, which is then renamed over the old file: a
crash mid-write leaves either the old document or the new one, never half of one. Killing the
writer (``kill -9``) needs nothing more, since the rename is atomic and what was written lives in
the system, not in the dead process; so a write is not forced to the disk one by one (an fsync
costs more than the write). Surviving a power loss is :meth:`FileStore.sync`'s work
(``Capability.SYNC``): it forces to the disk the documents this handle wrote since its last
sync, then the folder once. The studio syncs at the end of every step, before the run's record
says the step is done, and closing the store syncs what is left; a power loss may undo what was
written since the last sync (which a resumed run makes again), never what was before it.

A write (``set``, ``delete``, ``update``) holds a lock on its key alone, so writers of different
keys never wait for each other, while ``update`` stays atomic across the processes of one
machine: on Linux an open file description lock (``fcntl`` ``F_OFD_SETLKW``) on one byte of the
folder's lock file (``%lock``) chosen by the key's hash; elsewhere an ``flock`` on the whole file
(one writer at a time). The system drops either lock the moment its holder dies. Opening the
store removes the temporary files a killed writer left behind, under a lock on the whole of
``%lock``, so never a live writer's. Without ``fcntl`` (Windows) the lock covers the threads of
one process only, and the store says so: it then declares neither ``ATOMIC`` nor ``SHARED``.
A folder on a network file system is one machine's store only where its locks are honest.
The store keeps no expiry: a ``ttl`` is refused.

One run at a time (``Capability.LEASES``): a run takes the project's lease by holding an ``flock``
on ``%lease`` in the folder, which names the holder (run, loop, pid, host, start) for whoever is
refused. The system drops the lock the moment its process dies, so a killed run's lease is free at
once; the file itself stays (removing it would let two processes lock two different files).

A key's file is named by the key, percent-quoted (``book/1`` in ``book%2F1.json``). A key whose
quoted name would pass the 255 bytes a file name may have (any valid key may: a part of 200 bytes
quotes to 600) is kept in ``%long-<sha256 of the key>.json`` instead, as ``{"key": …,
"document": …}``, so every key :func:`~questfoundry.kit.check_key` accepts can be stored.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from questfoundry.kit import (
    Backend,
    BackendContext,
    Capability,
    LeaseHolder,
    StateError,
    check_key,
    hookimpl,
    is_internal,
)

try:
    import fcntl

    HAS_FLOCK = True
except ImportError:  # pragma: no cover - Windows
    HAS_FLOCK = False
#: a lock per key: open file description locks on one byte each (Linux, 64-bit ``off_t``)
PER_KEY_LOCKS = HAS_FLOCK and hasattr(fcntl, "F_OFD_SETLKW") and struct.calcsize("P") == 8

SUFFIX = ".json"
#: no quoted key starts with these (a quoted "%" is "%25"), so a key can never look like them
TEMP_PREFIX = "%tmp-"
LOCK_NAME = "%lock"
LEASE_NAME = "%lease"
LONG_PREFIX = "%long-"
#: the longest file name every common file system takes, in bytes
MAX_NAME_BYTES = 255

_CAPABILITIES = {Capability.PERSISTENT, Capability.SYNC}
if HAS_FLOCK:
    _CAPABILITIES |= {Capability.ATOMIC, Capability.SHARED, Capability.LEASES}

Change = Callable[[dict[str, Any] | None], Mapping[str, Any] | None]


class FileStore:
    """State documents as files; every write is atomic, and writes of one key are serialised
    across local processes."""

    capabilities = frozenset(_CAPABILITIES)
    #: a lease lasts until given back: the system drops a dead holder's lock at once
    lease_seconds = None

    def __init__(self, root: Path) -> None:
        self.root = root
        self._thread_lock = threading.RLock()
        self._leases: dict[str, int] = {}  # token → the descriptor holding the lease's flock
        self._unsynced: dict[Path, None] = {}  # files written since the last sync, in order
        self._folder_changed = False  # a name was added or removed since the last sync
        if root.is_dir():
            self.clean()

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    # ------------------------------------------------------------------ reading

    def get(self, key: str) -> dict[str, Any] | None:
        key = check_key(key)
        path = self._path(key)
        try:
            document = json.loads(_read(path))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(f"state {key!r} in {path} cannot be read: {exc}") from None
        return _decoded(key, path, document)

    def path_of(self, key: str) -> Path:
        """The file that holds ``key``'s document (whether it exists or not)."""
        return self._path(check_key(key))

    def list_keys(self, prefix: str = "") -> list[str]:
        keys = (self._key_of(name) for name in self._names() if name.endswith(SUFFIX))
        return sorted(k for k in keys if k and k.startswith(prefix) and not is_internal(k))

    # ------------------------------------------------------------------ writing

    def set(self, key: str, document: Mapping[str, Any], ttl: float | None = None) -> None:
        key = check_key(key)
        path = self._path(key)
        self._refuse_ttl(ttl)
        data = _encode(key, document, path)
        with self._locked(key):
            self._write(key, path, data)

    def delete(self, key: str) -> bool:
        key = check_key(key)
        path = self._path(key)
        with self._locked(key):
            return self._unlink(key, path)

    def update(self, key: str, change: Change, ttl: float | None = None) -> dict[str, Any] | None:
        key = check_key(key)
        path = self._path(key)
        self._refuse_ttl(ttl)
        with self._locked(key):
            new = change(self.get(key))
            if new is None:
                self._unlink(key, path)
                return None
            data = _encode(key, new, path)
            self._write(key, path, data)
            return _decoded(key, path, json.loads(data))

    def clean(self) -> int:
        """Remove the temporary files of writers that died mid-write; return how many."""
        if not any(name.startswith(TEMP_PREFIX) for name in self._names()):
            return 0  # the usual case: no lock taken, so a read-only folder still opens
        removed = 0
        with self._locked(None):
            for name in self._names():
                if name.startswith(TEMP_PREFIX):
                    (self.root / name).unlink(missing_ok=True)
                    removed += 1
        return removed

    def sync(self) -> None:
        """Force to the disk what this handle wrote since its last sync: each document's data,
        then the folder (the names) once, so a power loss keeps all of it."""
        with self._thread_lock:
            written, self._unsynced = list(self._unsynced), {}
            changed, self._folder_changed = self._folder_changed, False
        try:
            for path in written:
                _force(path, os.O_RDONLY)
            if changed and hasattr(os, "O_DIRECTORY"):  # a folder opens for fsync on POSIX only
                _force(self.root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            with self._thread_lock:  # not synced after all: the next sync tries again
                self._unsynced = dict.fromkeys(written) | self._unsynced
                self._folder_changed |= changed
            raise StateError(f"the state in {self.root} cannot be synced to disk: {exc}") from None

    def close(self) -> None:
        """Sync what is not yet synced and give back the leases still held; a write's lock is
        held only while the write runs."""
        try:
            self.sync()
        finally:
            for token in list(self._leases):
                self._let_go(token)

    # ------------------------------------------------------------------ the lease

    def take_lease(self, holder: LeaseHolder) -> LeaseHolder | None:
        fd = self._open_own(LEASE_NAME, "the state cannot be leased in")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held by a live process (a dead one's lock is gone with it)
            try:
                return LeaseHolder.from_json(os.read(fd, 64 * 1024))
            finally:
                os.close(fd)
        with self._thread_lock:
            self._leases[holder.token] = fd
        self._name(fd, holder)
        return None

    def renew_lease(self, holder: LeaseHolder) -> bool:
        with self._thread_lock:
            fd = self._leases.get(holder.token)
        if fd is None:
            return False
        self._name(fd, holder)
        return True

    def release_lease(self, holder: LeaseHolder) -> None:
        self._let_go(holder.token)

    # ------------------------------------------------------------------ internals

    def _name(self, fd: int, holder: LeaseHolder) -> None:
        """Write who holds the lease into the lease file (whose lock ``fd`` holds)."""
        data = holder.to_json().encode()
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, data, 0)
        except OSError:
            pass  # the lease holds all the same; a refused run cannot say by whom

    def _let_go(self, token: str) -> None:
        with self._thread_lock:
            fd = self._leases.pop(token, None)
        if fd is not None:
            with suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # drops the flock

    def _path(self, key: str) -> Path:
        """The file of ``key``, a key :func:`check_key` returned."""
        name = quote(key, safe="") + SUFFIX
        if len(name.encode()) > MAX_NAME_BYTES:
            name = LONG_PREFIX + hashlib.sha256(key.encode()).hexdigest() + SUFFIX
        return self.root / name

    def _key_of(self, name: str) -> str | None:
        """The key file ``name`` holds (None: not a document's file, or one being written)."""
        if name.startswith(TEMP_PREFIX) or name == LOCK_NAME:
            return None
        if not name.startswith(LONG_PREFIX):
            return unquote(name[: -len(SUFFIX)])
        try:
            with (self.root / name).open("rb") as handle:
                key = json.load(handle).get("key")
        except (OSError, ValueError, AttributeError):
            return None  # removed since it was listed, or not one of ours: not a key
        return key if isinstance(key, str) else None

    def _names(self) -> list[str]:
        try:
            return [entry.name for entry in os.scandir(self.root)]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StateError(f"the state folder {self.root} cannot be listed: {exc}") from None

    def _refuse_ttl(self, ttl: float | None) -> None:
        if ttl is not None:
            raise StateError(
                f"the file state store in {self.root} keeps no expiry: it cannot take a ttl"
            )

    @contextmanager
    def _locked(self, key: str | None) -> Iterator[None]:
        """The write lock of ``key`` (None: of every key), for this process's threads and every
        other process alike; see the module docstring."""
        if not HAS_FLOCK:  # pragma: no cover - Windows
            with self._thread_lock:
                yield
            return
        what = f"state {key!r}" if key is not None else "the state store"
        fd = self._open_own(LOCK_NAME, f"{what} cannot be written to")
        try:  # each write opens its own description, so threads exclude each other too
            if PER_KEY_LOCKS:
                start, length = (0, 0) if key is None else (_byte_of(key), 1)  # 0: to the end
                lock = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
                fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, lock)
            else:  # pragma: no cover - no per-key locks (macOS, BSD): one writer at a time
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases its lock

    def _open_own(self, name: str, failure: str) -> int:
        """A descriptor of the store's own file ``name`` (made with its folder if missing)."""
        path = self.root / name
        try:
            try:
                return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            except FileNotFoundError:  # the folder is missing (the first write makes it)
                self.root.mkdir(parents=True, exist_ok=True)
                return os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StateError(f"{failure} {self.root}: {exc}") from None

    def _write(self, key: str, path: Path, data: bytes) -> None:
        tmp = self.root / f"{TEMP_PREFIX}{uuid.uuid4().hex}{SUFFIX}"
        try:
            _write_new(tmp, data)
            tmp.replace(path)
        except BaseException as exc:
            with suppress(OSError):
                tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise StateError(f"state {key!r} cannot be written to {path}: {exc}") from None
            raise
        with self._thread_lock:
            self._unsynced[path] = None
            self._folder_changed = True

    def _unlink(self, key: str, path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateError(f"state {key!r} cannot be deleted from {path}: {exc}") from None
        with self._thread_lock:
            self._folder_changed = True
        return True


def _byte_of(key: str) -> int:
    """The byte of the lock file whose lock is ``key``'s: 63 bits of its hash, so two keys
    sharing one is as likely as a collision of a 63-bit hash (and would only wait in turn)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") >> 1


# Files are read and written with the fewest system calls (four for a small file; a Python file
# object makes up to nine): under asyncio the store runs on a worker thread, and every call lets
# the event loop's thread take the interpreter, which the worker must then win back.


def _read(path: Path) -> bytes:
    """The bytes of the file at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _write_new(path: Path, data: bytes) -> None:
    """``data`` in a new file at ``path`` (an existing file there is an error), readable by its
    owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        written = 0
        while written < len(data):
            written += os.write(fd, data[written:])
    finally:
        os.close(fd)


def _force(path: Path, flags: int) -> None:
    """fsync ``path`` (a file's data or a folder's names); a file since removed needs none."""
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode(key: str, document: Mapping[str, Any], path: Path | None = None) -> bytes:
    """The bytes of ``document``'s file (at ``path``: wrapped with its key under a long name)."""
    if not isinstance(document, Mapping):
        raise StateError(f"state {key!r} must be a JSON object, not {type(document).__name__}")
    value: dict[str, Any] = dict(document)
    if path is not None and path.name.startswith(LONG_PREFIX):
        value = {"key": key, "document": value}
    try:
        text = json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)
        return text.encode()
    except (TypeError, ValueError) as exc:
        raise StateError(f"state {key!r} is not JSON-serialisable: {exc}") from None


def _decoded(key: str, path: Path, stored: Any) -> dict[str, Any]:
    """The document in ``path``'s JSON (a long name's file holds its key too)."""
    if path.name.startswith(LONG_PREFIX):
        if not isinstance(stored, dict) or stored.get("key") != key:
            raise StateError(f"state {key!r} in {path} does not hold that key")
        stored = stored.get("document")
    if not isinstance(stored, dict):
        raise StateError(f"state {key!r} in {path} is not a JSON object")
    return stored


def make_file_store(settings: Mapping[str, Any], context: BackendContext) -> FileStore:
    return FileStore(context.resolve_path(settings.get("path", ".questfoundry/state")))


@hookimpl
def state_stores() -> dict[str, Backend]:
    return {
        "file": Backend(
            make_file_store,
            settings={"$ref": "#/$defs/file_store"},  # the core schema holds built-ins' settings
            capabilities=FileStore.capabilities,
            description="one JSON file per state document under state.path (one machine)",
        )
    }
