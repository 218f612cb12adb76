"""The migration manager: moves a store's state between schema versions, one safe change.

:meth:`MigrationManager.migrate` reads the whole state, runs each migration's ``upgrade`` (or
``downgrade``) on it in memory — a migration that raises leaves the store untouched —, writes a
backup, then writes only what changed, with the new version record and a migration-log entry,
as one all-or-nothing change (:mod:`questfoundry.state.journal`): a kill -9 at any point leaves
documents that match the version the store records once it is next opened.

Migrate while nothing else uses the store: a document written by another process during a
migration may be lost.

:func:`checked` is what opening a store means (the runtime calls it): finish or undo a change a
dead process left half-done, record the latest versions in a store that is still empty, and
refuse a store whose schema is newer than this code knows, naming both versions.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from questfoundry.contracts.errors import MigrationError
from questfoundry.contracts.protocols import StateStore
from questfoundry.contracts.records import Migration, Snapshot
from questfoundry.state.backup import BackupPolicy
from questfoundry.state.exchange import entry_problem
from questfoundry.state.history import HISTORY_KEY, log_document, migration_log
from questfoundry.state.journal import JournalError, Step, commit, no_steps, recover
from questfoundry.state.migrations import CORE_MIGRATIONS, all_migrations, chains
from questfoundry.state.versions import (
    CORE_SCOPE,
    VERSION_KEY,
    Versions,
    describe,
    latest,
    record,
    recorded,
    refuse_newer,
)

if TYPE_CHECKING:
    from questfoundry.registry import PluginManager

log = logging.getLogger("questfoundry.state")
schema_log = logging.getLogger("questfoundry.state.schema")

Direction = Literal["upgrade", "downgrade"]


@dataclass(frozen=True)
class Plan:
    """The migrations that take the state from ``start`` to ``target``, in order."""

    start: Versions
    target: Versions
    steps: tuple[tuple[Migration, Direction], ...]

    def describe(self) -> list[str]:
        """One line per step: ``questfoundry 0 -> 1: the studio's layout…``."""
        lines = []
        for migration, direction in self.steps:
            before = migration.version - 1 if direction == "upgrade" else migration.version
            after = migration.version if direction == "upgrade" else migration.version - 1
            lines.append(f"{migration.scope} {before} -> {after}: {migration.description}")
        return lines


@dataclass(frozen=True)
class Migrated:
    """What :meth:`MigrationManager.migrate` did (or, for a dry run, would do)."""

    plan: Plan
    changed: int
    backup: Path | None = None
    dry_run: bool = False
    keys: tuple[str, ...] = field(default=(), repr=False)


class MigrationManager:
    """Runs ``migrations`` (the core's and the plugins') over one store."""

    def __init__(
        self,
        store: StateStore,
        migrations: Sequence[Migration] = CORE_MIGRATIONS,
        backups: BackupPolicy | None = None,
    ) -> None:
        self.store = store
        self.chains = chains(migrations)
        self.latest = latest(migrations)
        self.backups = backups

    @classmethod
    def for_plugins(
        cls, store: StateStore, manager: PluginManager, backups: BackupPolicy | None = None
    ) -> MigrationManager:
        """A manager for the core's migrations and every enabled plugin's."""
        return cls(store, all_migrations(manager.hook.state_migrations()), backups)

    # ------------------------------------------------------------------ versions

    def prepare(self) -> Versions:
        """Open the store: recover, stamp an empty one, refuse a newer one; its versions.

        A journal that cannot be undone but left the documents as they were is a warning (the
        store opens; the next change is refused until ``questfoundry state repair``); one that
        may have left them half-changed is a :class:`~questfoundry.state.journal.JournalError`.
        """
        try:
            outcome = recover(self.store)
        except JournalError as stuck:
            if not stuck.intact:
                raise
            outcome = str(stuck)
        if outcome:
            log.warning("state store: %s", outcome)
        versions = recorded(self.store)
        if versions is None:
            if not self.store.list_keys():
                self.store.set(VERSION_KEY, record(self.latest))
                return dict(self.latest)
            versions = {}  # written before versions were recorded
        current = {scope: versions.get(scope, 0) for scope in {*self.latest, *versions}}
        refuse_newer(current, self.latest)
        return current

    def plan(self, current: Mapping[str, int], targets: Mapping[str, int] | None = None) -> Plan:
        """The steps from ``current`` to ``targets`` (default: the latest of every scope)."""
        target = {**current, **self.latest} if targets is None else {**current, **targets}
        for scope, version in target.items():
            newest = self.latest.get(scope, 0)
            if not 0 <= version <= newest:
                raise MigrationError(
                    f"no migration leads to {scope} version {version}: this code knows "
                    f"versions 0 to {newest} of {scope!r}"
                )
        order = sorted(target, key=lambda scope: (scope != CORE_SCOPE, scope))
        ups: list[tuple[Migration, Direction]] = []
        downs: list[tuple[Migration, Direction]] = []
        for scope in order:
            chain, start, end = self.chains.get(scope, []), current.get(scope, 0), target[scope]
            ups += [(chain[v - 1], "upgrade") for v in range(start + 1, end + 1)]
            downs[:0] = [(chain[v - 1], "downgrade") for v in range(start, end, -1)]
        return Plan(dict(current), target, tuple(downs + ups))

    # ------------------------------------------------------------------ migrating

    def migrate(
        self,
        targets: Mapping[str, int] | None = None,
        *,
        dry_run: bool = False,
        step: Step = no_steps,
    ) -> Migrated:
        """Take the store to ``targets`` (default: latest); see the module for the guarantees."""
        current = self.prepare()
        plan = self.plan(current, targets)
        if not plan.steps:
            return Migrated(plan, 0, dry_run=dry_run)
        before = read_snapshot(self.store)
        after = run_steps(copy.deepcopy(before), plan.steps)
        writes: dict[str, dict[str, Any] | None] = {
            key: doc for key, doc in after.items() if before.get(key) != doc
        }
        writes.update((key, None) for key in before if key not in after)
        changed = tuple(sorted(writes))
        if dry_run:
            return Migrated(plan, len(changed), dry_run=True, keys=changed)
        backup = self.backups.write(self.store, current) if self.backups else None
        step("backup")
        entry = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "from": record(current)["versions"],
            "to": record(plan.target)["versions"],
            "steps": plan.describe(),
            "changed": len(changed),
            "backup": backup.name if backup else None,
        }
        writes[VERSION_KEY] = record(plan.target)
        writes[HISTORY_KEY] = log_document([*migration_log(self.store), entry])
        commit(self.store, writes, f"the migration to {describe(plan.target)}", step)
        return Migrated(plan, len(changed), backup, keys=changed)


def read_snapshot(store: StateStore) -> Snapshot:
    """Every document of ``store`` by key (internal records left out)."""
    snapshot: Snapshot = {}
    for key in store.list_keys():
        document = store.get(key)
        if document is not None:
            snapshot[key] = document
    return snapshot


def run_steps(state: Snapshot, steps: Sequence[tuple[Migration, Direction]]) -> Snapshot:
    """Apply ``steps`` in memory; any failure is a :class:`MigrationError` naming the step."""
    for migration, direction in steps:
        name = f"migration {migration.scope} {migration.version} ({direction})"
        try:
            state = getattr(migration, direction)(state)
        except Exception as exc:
            raise MigrationError(f"{name} failed: {exc}; nothing was changed") from exc
        problem = _snapshot_problem(state)
        if problem:
            raise MigrationError(f"{name} returned a bad state: {problem}; nothing was changed")
    return state


def _snapshot_problem(state: Any) -> str | None:
    if not isinstance(state, dict):
        return f"a {type(state).__name__}, not a mapping of keys to documents"
    return next((p for k, d in state.items() if (p := entry_problem(k, d))), None)


def checked(store: StateStore, manager: PluginManager) -> StateStore:
    """``store`` made ready to use (see the module); closed again if it cannot be."""
    try:
        migrations = MigrationManager.for_plugins(store, manager)
        current = migrations.prepare()
    except BaseException:
        store.close()
        raise
    older = {scope: n for scope, n in current.items() if n < migrations.latest.get(scope, 0)}
    if older:
        schema_log.warning(
            "the state's schema is %s, older than this code's %s: run `questfoundry state "
            "migrate` (a backup is written first)",
            describe(older),
            describe({s: migrations.latest[s] for s in older}),
        )
    return store
