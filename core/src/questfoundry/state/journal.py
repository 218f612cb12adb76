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

A change that fails undoes what it staged, whatever the failure. When even that fails (or a
journal cannot be read, or a committed change cannot be finished), the journal stays and a
:class:`JournalError` names its file and ``questfoundry state repair`` (:func:`repair`), which
undoes or finishes it by hand. Until then a journal whose change never committed leaves the
documents as they were, so the store still opens (with a warning); only the next change waits.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from questfoundry.contracts.errors import StateError
from questfoundry.contracts.protocols import INTERNAL_KEY_PREFIX, StateStore
from questfoundry.kit.state_keys import key_problem

JOURNAL_KEY = "_qf/journal"
STAGE_PREFIX = "_qf/stage/"

#: called with each step's name as it completes (tests kill the process there)
Step = Callable[[str], None]
#: what a change writes: a document, or None to delete the key
Writes = Mapping[str, "dict[str, Any] | None"]


def no_steps(step: str) -> None:
    """The step observer that observes nothing."""


class JournalError(StateError):
    """A journal that could not be undone or finished; the message names its file and the
    repair command. ``intact``: the documents are as they were before the change."""

    def __init__(self, message: str, *, intact: bool) -> None:
        super().__init__(message)
        self.intact = intact


def commit(store: StateStore, writes: Writes, what: str, step: Step = no_steps) -> None:
    """Write ``writes`` to ``store`` all-or-nothing (``what`` names the change in messages).

    On an error before step 3 what was staged is undone and nothing is changed; after it, the
    change completes when the store is next opened (the message says so).
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
    store.update(JOURNAL_KEY, lambda current: _begin(store, current, journal))
    step("journal")
    staged: list[str] = []
    try:
        for key in keys:
            document = writes[key]
            copy = {"deleted": True} if document is None else {"document": document}
            store.set(STAGE_PREFIX + key, copy)
            staged.append(key)
            step("stage")
        store.update(JOURNAL_KEY, lambda current: _committed(current, token))
    except BaseException as failure:
        problem = _roll_back(store, staged, token)
        if not isinstance(failure, StateError):
            raise
        if problem:
            raise JournalError(
                f"{what} failed and could not be undone: "
                + repair_hint(store, f"{failure}; {problem}"),
                intact=True,
            ) from None
        raise StateError(f"{what} failed; nothing was changed: {failure}") from None
    step("commit")
    try:
        _roll_forward(store, keys, step)
    except StateError as exc:
        raise StateError(
            f"{what} is committed but not yet applied ({exc}); it completes when the store is "
            "next opened"
        ) from None


def recover(store: StateStore) -> str | None:
    """Finish or undo a change a dead process left half-done; say which (None: nothing to do).

    :class:`JournalError` when the journal cannot be read, undone or finished.
    """
    journal = _journal(store)
    if journal is None:
        return None
    if _alive(journal):
        raise StateError(
            f"{journal.get('what', 'a change')} by process {journal.get('pid')} is in progress "
            "in this store; try again when it has finished"
        )
    what = journal.get("what", "change")
    keys = _staged_keys(journal)
    if journal.get("state") == "committed":
        try:
            _roll_forward(store, keys, no_steps)
        except StateError as exc:
            raise JournalError(
                f"{what} was interrupted after it committed and cannot be completed: "
                + repair_hint(store, str(exc)),
                intact=False,
            ) from None
        return f"completed {what}, which was interrupted"
    problem = _roll_back(store, keys, journal.get("token"))
    if problem:
        raise JournalError(
            f"{what} was interrupted and cannot be undone; the documents are as they were "
            "before it, and no other change can be made until you " + repair_hint(store, problem),
            intact=True,
        )
    return f"rolled back {what}, which was interrupted"


def repair(store: StateStore, *, discard: bool = False) -> str | None:
    """Undo or finish by hand what :func:`recover` could not; say what was done (None: there was
    no journal). ``discard``: drop a committed change that cannot be finished, keeping the
    documents as they are now."""
    try:
        journal = store.get(JOURNAL_KEY)
    except StateError:
        store.delete(JOURNAL_KEY)  # deleting never reads it
        return "removed a journal that could not be read; the documents are as they are"
    if journal is None:
        return None
    if _alive(journal):
        raise StateError(
            f"{journal.get('what', 'a change')} by process {journal.get('pid')} is in progress "
            "in this store: it is not broken; try again when it has finished"
        )
    what = journal.get("what", "change")
    keys = _staged_keys(journal)
    if journal.get("state") == "committed":
        failed = _each(keys, lambda key: _apply(store, key))
        if failed and not discard:
            raise JournalError(
                f"{what} is committed but cannot be finished: `questfoundry state repair "
                "--discard` keeps the documents as they are now (that change partly made), or "
                "restore a backup with `questfoundry state import BACKUP --replace` "
                f"({_failures(failed)})",
                intact=False,
            )
        store.delete(JOURNAL_KEY)
        if failed:
            return f"discarded the rest of {what}: {len(failed)} documents were not changed"
        return f"completed {what}"
    failed = _each(keys, lambda key: store.delete(STAGE_PREFIX + key))
    store.delete(JOURNAL_KEY)
    left = f"; {_failures(failed)}, left unused" if failed else ""
    return f"rolled back {what}: the documents are as they were before it{left}"


def repair_hint(store: StateStore, detail: str = "") -> str:
    """The command that repairs the journal, then where it is and ``detail`` (the command first:
    a long line is cut at its end)."""
    more = f"; {detail}" if detail else ""
    return f"run `questfoundry state repair` (its journal: {_where(store)}{more})"


def _journal(store: StateStore) -> dict[str, Any] | None:
    """The journal; :class:`JournalError` when it is damaged (the store itself answers)."""
    try:
        return store.get(JOURNAL_KEY)
    except StateError as exc:
        try:
            store.list_keys(INTERNAL_KEY_PREFIX)
        except StateError:
            raise exc from None  # the store cannot be reached: its own message says so
        raise JournalError(
            "the journal of an interrupted change cannot be read: " + repair_hint(store, str(exc)),
            intact=False,
        ) from None


def _staged_keys(journal: Mapping[str, Any]) -> list[str]:
    """The keys a journal lists that can have a staged copy (a key the rules refuse, e.g. one
    an older version let through, never had one: its staging failed)."""
    keys = journal.get("keys", [])
    listed = keys if isinstance(keys, list) else []
    return [k for k in listed if isinstance(k, str) and key_problem(STAGE_PREFIX + k) is None]


def _where(store: StateStore) -> str:
    """The journal's file when the store says (``path_of``), else its key and the store."""
    path_of = getattr(store, "path_of", None)
    return str(path_of(JOURNAL_KEY)) if callable(path_of) else f"{JOURNAL_KEY!r} in {store!r}"


def _begin(
    store: StateStore, current: dict[str, Any] | None, journal: dict[str, Any]
) -> dict[str, Any]:
    if current is None:
        return journal
    what = current.get("what", "another change")
    if _alive(current):
        raise StateError(
            f"{what} (process {current.get('pid')}) is in progress in this store; try again "
            "when it has finished"
        )
    raise JournalError(
        f"{what} was interrupted and not repaired: " + repair_hint(store), intact=True
    )


def _committed(current: dict[str, Any] | None, token: str) -> dict[str, Any]:
    if current is None or current.get("token") != token:
        raise StateError("the change was interrupted: another process recovered the store")
    return {**current, "state": "committed"}


def _apply(store: StateStore, key: str) -> None:
    """Move ``key``'s staged copy onto it (nothing when it has moved already)."""
    staged = store.get(STAGE_PREFIX + key)
    if staged is not None:
        if staged.get("deleted"):
            store.delete(key)
        else:
            store.set(key, staged["document"])
        store.delete(STAGE_PREFIX + key)


def _each(keys: list[str], act: Callable[[str], object]) -> dict[str, StateError]:
    """``act`` on every key; the keys it failed on, with why."""
    failed: dict[str, StateError] = {}
    for key in keys:
        try:
            act(key)
        except StateError as exc:
            failed[key] = exc
    return failed


def _failures(failed: Mapping[str, StateError]) -> str:
    key, error = next(iter(failed.items()))
    more = f" and {len(failed) - 1} more" if len(failed) > 1 else ""
    return f"the staged copy of {key!r}{more} cannot be moved or removed ({error})"


def _roll_forward(store: StateStore, keys: list[str], step: Step) -> None:
    for key in keys:
        _apply(store, key)
        step("apply")
    store.delete(JOURNAL_KEY)
    step("done")


def _roll_back(store: StateStore, keys: list[str], token: Any) -> str | None:
    """Remove the staged copies of ``keys``, then the journal (if it is still ``token``'s); why
    that failed, or None."""
    failed = _each(keys, lambda key: store.delete(STAGE_PREFIX + key))
    if failed:
        return _failures(failed)
    try:
        store.update(
            JOURNAL_KEY,
            lambda current: None if current and current.get("token") == token else current,
        )
    except StateError as exc:
        return f"the journal cannot be removed: {exc}"
    return None


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
