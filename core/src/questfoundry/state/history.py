"""What ``--include-history`` adds to an export: the record of what happened, not the state.

History is (1) the migration log, the internal document ``_qf/history`` listing every migration
run (when, from which versions to which, the backup written before it), and (2) the studio's run
records, the documents under ``runs/`` (one per ``questfoundry run``: its steps, calls and
costs). A plain export leaves both out, so it holds the project itself; backups always hold both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from questfoundry.contracts.errors import StateError
from questfoundry.contracts.protocols import StateStore

HISTORY_KEY = "_qf/history"
#: documents that are history rather than state
HISTORY_PREFIXES = ("runs/",)
#: the migration log keeps this many newest entries
LOG_LENGTH = 200


def is_history(key: str) -> bool:
    return key.startswith(HISTORY_PREFIXES)


def migration_log(store: StateStore) -> list[dict[str, Any]]:
    """The store's migration log, oldest first."""
    document = store.get(HISTORY_KEY)
    entries = [] if document is None else document.get("migrations", [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise StateError(f"the state's migration log {HISTORY_KEY!r} is damaged")
    return entries


def log_document(entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``_qf/history`` document holding ``entries`` (the newest :data:`LOG_LENGTH`)."""
    return {"migrations": [dict(e) for e in entries[-LOG_LENGTH:]]}
