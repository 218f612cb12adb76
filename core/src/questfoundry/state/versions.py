"""The schema versions a store records, and what the code knows.

A store records one version per *scope* (``questfoundry`` for the core's documents, a plugin's
distribution name for that plugin's) in the internal document ``_qf/schema_version``:
``{"versions": {"questfoundry": 1}}``. A scope missing from the record is at version 0; a
store with documents but no record at all was written before versions were recorded (0 for
every scope).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from questfoundry.contracts.errors import MigrationError, StateError
from questfoundry.contracts.protocols import StateStore
from questfoundry.contracts.records import Migration

VERSION_KEY = "_qf/schema_version"
CORE_SCOPE = "questfoundry"

Versions = dict[str, int]


def recorded(store: StateStore) -> Versions | None:
    """The versions ``store`` records, or None when it records none."""
    document = store.get(VERSION_KEY)
    if document is None:
        return None
    versions = document.get("versions")
    if not isinstance(versions, dict) or not all(
        isinstance(scope, str) and isinstance(n, int) and n >= 0 for scope, n in versions.items()
    ):
        raise StateError(f"the state's schema record {VERSION_KEY!r} is damaged: {document!r}")
    return dict(versions)


def record(versions: Mapping[str, int]) -> dict[str, object]:
    """The document recording ``versions`` (scopes at 0 left out, so the record stays stable)."""
    return {"versions": {scope: n for scope, n in sorted(versions.items()) if n}}


def latest(migrations: Sequence[Migration]) -> Versions:
    """The newest version of every scope the code knows (the core's always, 0 if it had none)."""
    known: Versions = {CORE_SCOPE: 0}
    for migration in migrations:
        known[migration.scope] = max(known.get(migration.scope, 0), migration.version)
    return known


def describe(versions: Mapping[str, int]) -> str:
    """``questfoundry 1, questfoundry-foo 2``: versions as one line for a message."""
    return ", ".join(f"{scope} {n}" for scope, n in sorted(versions.items())) or "none"


def refuse_newer(current: Mapping[str, int], known: Mapping[str, int]) -> None:
    """A :class:`MigrationError` when the store is newer than this code in any scope."""
    newer = {scope: n for scope, n in current.items() if n > known.get(scope, 0)}
    if newer:
        parts = [
            f"{scope} version {n} (this code knows {known.get(scope, 0)})"
            for scope, n in sorted(newer.items())
        ]
        raise MigrationError(
            "the state was written by a newer QuestFoundry: its schema is "
            + "; ".join(parts)
            + ". Upgrade QuestFoundry (or install the plugin) instead; it is never downgraded"
            " silently"
        )
