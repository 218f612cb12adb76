"""Writing many keys as one change that a kill -9 cannot tear: a journal and staged copies.

A store writes one key atomically, not many. :func:`commit` makes a change of many keys (a
migration, an import) all-or-nothing through the store's own protocol, so it works on every
store alike:

1. the journal ``_qf/journal`` is created (``staging``), listing every key the change writes;
2. each new document (or a deletion mark) is written to ``_qf/stage/<key>``;
3. the journal flips to ``committed`` — the single write that decides;
4. each staged copy is moved onto its key, then the journal is removed.

:func:`recover` (run whenever a store is opened: :func:`questfoundry.state.manager.checked`) finds
a journal left by a process that died: ``staging`` is rolled back (the staged copies removed,
the store as it was), ``committed`` is rolled forward (steps 4 and 5 finished). Either way the
documents match the schema version they record. A journal of a process still alive on this
machine is left alone: its change is in progress.
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from questfoundry.contracts.errors import StateError
from questfoundry.contracts.protocols import StateStore

JOURNAL_KEY = "_qf/journal"
STAGE_PREFIX = "_qf/stage/"

#: called with each step's name as it completes (tests kill the process there)
Step = Callable[[str], None]
#: what a change writes: a document, or None to delete the key
Writes = Mapping[str, "dict[str, Any] | None"]


def no_steps(step: str) -> None:
    """The step observer that observes nothing."""


def commit(store: StateStore, writes: Writes, what: str, step: Step = no_steps) -> None:
    """Write ``writes`` to ``store`` all-or-nothing (``what`` names the change in messages).

    On an error before step 3 nothing is changed; after it, the change completes when the store
    is next opened (the message says so).
    """
    token = uuid.uuid4().hex
    keys = sorted(writes)
    journal = {
        "token": token,
        "state": "staging",
        "what": what,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": process_started(os.getpid()),
        "keys": keys,
    }
    store.update(JOURNAL_KEY, lambda current: _begin(current, journal))
    step("journal")
    try:
        for key in keys:
            document = writes[key]
            staged = {"deleted": True} if document is None else {"document": document}
            store.set(STAGE_PREFIX + key, staged)
            step("stage")
        store.update(JOURNAL_KEY, lambda current: _committed(current, token))
    except BaseException:
        with contextlib.suppress(StateError):  # failing now: the next open rolls it back
            _roll_back(store, journal)
        raise
    step("commit")
    try:
        _roll_forward(store, keys, step)
    except StateError as exc:
        raise StateError(
            f"{what} is committed but not yet applied ({exc}); it completes when the store is "
            "next opened"
        ) from None


def recover(store: StateStore) -> str | None:
    """Finish or undo a change a dead process left half-done; say which (None: nothing to do)."""
    journal = store.get(JOURNAL_KEY)
    if journal is None:
        return None
    if _alive(journal):
        raise StateError(
            f"{journal.get('what', 'a change')} by process {journal.get('pid')} is in progress "
            "in this store; try again when it has finished"
        )
    keys = [key for key in journal.get("keys", []) if isinstance(key, str)]
    if journal.get("state") == "committed":
        _roll_forward(store, keys, no_steps)
        return f"completed an interrupted {journal.get('what', 'change')}"
    _roll_back(store, journal)
    return f"rolled back an interrupted {journal.get('what', 'change')}"


def _begin(current: dict[str, Any] | None, journal: dict[str, Any]) -> dict[str, Any]:
    if current is not None:
        raise StateError(
            f"{current.get('what', 'another change')} (process {current.get('pid')}) is in "
            "progress in this store; try again when it has finished"
        )
    return journal


def _committed(current: dict[str, Any] | None, token: str) -> dict[str, Any]:
    if current is None or current.get("token") != token:
        raise StateError("the change was interrupted: another process recovered the store")
    return {**current, "state": "committed"}


def _roll_forward(store: StateStore, keys: list[str], step: Step) -> None:
    for key in keys:
        staged = store.get(STAGE_PREFIX + key)
        if staged is not None:  # None: moved already, before an interruption
            if staged.get("deleted"):
                store.delete(key)
            else:
                store.set(key, staged["document"])
            store.delete(STAGE_PREFIX + key)
        step("apply")
    store.delete(JOURNAL_KEY)
    step("done")


def _roll_back(store: StateStore, journal: Mapping[str, Any]) -> None:
    for key in journal.get("keys", []):
        store.delete(STAGE_PREFIX + key)
    token = journal.get("token")
    store.update(
        JOURNAL_KEY, lambda current: None if current and current.get("token") == token else current
    )


def _alive(journal: Mapping[str, Any]) -> bool:
    """Whether the journal's process runs on this machine now (another machine's: unknown, no).

    A process is known by its pid and, where ``/proc`` tells it, its start time, so a pid that a
    new process reuses does not pass for the dead one.
    """
    pid = journal.get("pid")
    if journal.get("host") != socket.gethostname() or not isinstance(pid, int):
        return False
    if pid == os.getpid():
        return False  # this very process left it (an error it survived): recover it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    started = process_started(pid)
    return started is None or journal.get("started") in (None, started)


def process_started(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot, from ``/proc``), or None if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[19].decode() if len(fields) > 19 else None
