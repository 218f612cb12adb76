"""What the state tests share: a store written before versions, and a store's folder as bytes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from questfoundry.builtins.file_store import LOCK_NAME, FileStore


def unversioned(root: Path, state: Mapping[str, dict[str, Any]]) -> FileStore:
    """A file store holding ``state``, written before versions were recorded (schema 0)."""
    store = FileStore(root)
    for key, document in state.items():
        store.set(key, document)
    return store


def files(root: Path) -> dict[str, bytes]:
    """Every file of a store's folder, by name: what "exactly as it was" compares."""
    return {p.name: p.read_bytes() for p in sorted(root.iterdir()) if p.name != LOCK_NAME}
