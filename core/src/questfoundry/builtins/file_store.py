"""Built-in state store ``file``: one JSON document per key under ``state.path``.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the old
file, so a crash mid-write leaves either the old document or the new one, never half of one.

Every write (``set``, ``delete``, ``update``) holds an exclusive ``flock`` on the folder's lock
file (``%lock``), so ``update`` is atomic across the processes of one machine and a write never
races another. Opening the store removes the temporary files a killed writer left behind (under
the same lock, so never a live writer's). Without ``fcntl`` (Windows) the lock covers the threads
of one process only, and the store says so: it then declares neither ``ATOMIC`` nor ``SHARED``.
A folder on a network file system is one machine's store only where its ``flock`` is honest.
The store keeps no expiry: a ``ttl`` is refused.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from questfoundry.kit import (
    Backend,
    BackendContext,
    Capability,
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

SUFFIX = ".json"
#: no quoted key starts with these (a quoted "%" is "%25"), so a key can never look like them
TEMP_PREFIX = "%tmp-"
LOCK_NAME = "%lock"

_CAPABILITIES = {Capability.PERSISTENT}
if HAS_FLOCK:
    _CAPABILITIES |= {Capability.ATOMIC, Capability.SHARED}

Change = Callable[[dict[str, Any] | None], Mapping[str, Any] | None]


class FileStore:
    """State documents as files; every write is atomic and serialised across local processes."""

    capabilities = frozenset(_CAPABILITIES)

    def __init__(self, root: Path) -> None:
        self.root = root
        self._thread_lock = threading.RLock()
        if root.is_dir():
            self.clean()

    def __repr__(self) -> str:
        return f"FileStore({str(self.root)!r})"

    # ------------------------------------------------------------------ reading

    def get(self, key: str) -> dict[str, Any] | None:
        path = self._path(key)
        try:
            with path.open("rb") as handle:
                document = json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StateError(f"state {key!r} in {path} cannot be read: {exc}") from None
        if not isinstance(document, dict):
            raise StateError(f"state {key!r} in {path} is not a JSON object")
        return document

    def list_keys(self, prefix: str = "") -> list[str]:
        keys = (
            unquote(name[: -len(SUFFIX)])
            for name in self._names()
            if name.endswith(SUFFIX) and not name.startswith(TEMP_PREFIX)
        )
        return sorted(k for k in keys if k.startswith(prefix) and not is_internal(k))

    # ------------------------------------------------------------------ writing

    def set(self, key: str, document: Mapping[str, Any], ttl: float | None = None) -> None:
        path = self._path(key)
        self._refuse_ttl(ttl)
        data = _encode(key, document)
        with self._locked(key):
            self._write(key, path, data)

    def delete(self, key: str) -> bool:
        path = self._path(key)
        with self._locked(key):
            return self._unlink(key, path)

    def update(self, key: str, change: Change, ttl: float | None = None) -> dict[str, Any] | None:
        path = self._path(key)
        self._refuse_ttl(ttl)
        with self._locked(key):
            new = change(self.get(key))
            if new is None:
                self._unlink(key, path)
                return None
            data = _encode(key, new)
            self._write(key, path, data)
            written: dict[str, Any] = json.loads(data)
            return written

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

    def close(self) -> None:
        """Nothing to release: the lock is held only while a write runs."""

    # ------------------------------------------------------------------ internals

    def _path(self, key: str) -> Path:
        return self.root / (quote(check_key(key), safe="") + SUFFIX)

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
        """The folder's write lock: this process's threads, then every process (``flock``)."""
        with self._thread_lock:
            if not HAS_FLOCK:  # pragma: no cover - Windows
                yield
                return
            what = f"state {key!r}" if key is not None else "the state store"
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StateError(f"{what} cannot be written to {self.root}: {exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)  # closing the descriptor releases the flock

    def _write(self, key: str, path: Path, data: bytes) -> None:
        try:
            fd, tmp = tempfile.mkstemp(dir=self.root, prefix=TEMP_PREFIX, suffix=SUFFIX)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                Path(tmp).replace(path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StateError(f"state {key!r} cannot be written to {path}: {exc}") from None

    def _unlink(self, key: str, path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StateError(f"state {key!r} cannot be deleted from {path}: {exc}") from None
        return True


def _encode(key: str, document: Mapping[str, Any]) -> bytes:
    if not isinstance(document, Mapping):
        raise StateError(f"state {key!r} must be a JSON object, not {type(document).__name__}")
    try:
        text = json.dumps(dict(document), ensure_ascii=False, sort_keys=True, allow_nan=False)
        return text.encode()
    except (TypeError, ValueError) as exc:
        raise StateError(f"state {key!r} is not JSON-serialisable: {exc}") from None


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
