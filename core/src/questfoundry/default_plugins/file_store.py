"""Built-in state store ``file``: one JSON document per key under ``state.path``.

Writes go to a temporary file in the same folder, are flushed to disk, then renamed over the old
file, so a crash mid-write leaves either the old document or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

from questfoundry.errors import StateError
from questfoundry.hookspecs import hookimpl
from questfoundry.interfaces import BackendContext, Capability
from questfoundry.plugins import Backend

SUFFIX = ".json"
#: no quoted key starts with this (a quoted "%" is "%25"), so a key can never look temporary
TEMP_PREFIX = "%tmp-"


class FileStore:
    """State documents as files; safe for one writer per key at a time."""

    capabilities = frozenset({Capability.PERSISTENT, Capability.SHARED})

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        if not key:
            raise StateError("a state key cannot be empty")
        return self.root / (quote(key, safe="") + SUFFIX)

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

    def set(self, key: str, document: Mapping[str, Any]) -> None:
        path = self._path(key)
        try:
            data = json.dumps(document, ensure_ascii=False, sort_keys=True).encode()
        except (TypeError, ValueError) as exc:
            raise StateError(f"state {key!r} is not JSON-serialisable: {exc}") from None
        try:
            self.root.mkdir(parents=True, exist_ok=True)
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

    def delete(self, key: str) -> bool:
        try:
            self._path(key).unlink()
        except FileNotFoundError:
            return False
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        if not self.root.is_dir():
            return []
        names = (p.name for p in self.root.glob("*" + SUFFIX))
        keys = (unquote(n[: -len(SUFFIX)]) for n in names if not n.startswith(TEMP_PREFIX))
        return sorted(k for k in keys if k.startswith(prefix))

    def close(self) -> None:
        """Nothing to release."""


def make_file_store(settings: Mapping[str, Any], context: BackendContext) -> FileStore:
    return FileStore(context.resolve_path(settings.get("path", ".questfoundry/state")))


@hookimpl
def state_stores() -> dict[str, Backend]:
    return {
        "file": Backend(
            make_file_store,
            settings={"$ref": "#/$defs/file_store"},  # the core schema holds built-ins' settings
            capabilities=FileStore.capabilities,
            description="one JSON file per state document under state.path",
        )
    }
