"""The core's own migrations, and the chains every scope's migrations must form.

Version 1 of the ``questfoundry`` scope gives the state the studio's layout: the Showrunner keeps
the book under ``book/`` and its run records under ``runs/``; a document kept before version 1
anywhere else moves under ``legacy/`` (``notes`` becomes ``legacy/notes``), so the studio never
mistakes an older document for one of its own. Downgrading moves them back. The mapping is a
bijection (a pre-1 ``legacy/x`` becomes ``legacy/legacy/x``), so every state round-trips.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from questfoundry.contracts.errors import MigrationError
from questfoundry.contracts.records import Migration, Snapshot
from questfoundry.state.versions import CORE_SCOPE

#: where the studio keeps its documents from version 1 on
STUDIO_AREAS = ("book/", "runs/")
LEGACY = "legacy/"


def _studio_layout_up(state: Snapshot) -> Snapshot:
    return _renamed(state, lambda key: key if key.startswith(STUDIO_AREAS) else LEGACY + key)


def _studio_layout_down(state: Snapshot) -> Snapshot:
    return _renamed(state, lambda key: key.removeprefix(LEGACY))


def _renamed(state: Snapshot, rename: Callable[[str], str]) -> Snapshot:
    result: Snapshot = {}
    for key, document in state.items():
        new = rename(key)
        if new in result:
            raise MigrationError(f"state keys {key!r} and another both become {new!r}")
        result[new] = document
    return result


CORE_MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        _studio_layout_up,
        _studio_layout_down,
        "the studio's layout: book/ and runs/; older documents move under legacy/",
    ),
)


def chains(migrations: Iterable[Migration]) -> dict[str, list[Migration]]:
    """Each scope's migrations in order, checked to number ``1, 2, 3…`` with no gap or twin."""
    by_scope: dict[str, list[Migration]] = {}
    for migration in migrations:
        by_scope.setdefault(migration.scope, []).append(migration)
    for scope, chain in by_scope.items():
        chain.sort(key=lambda m: m.version)
        numbers = [m.version for m in chain]
        if numbers != list(range(1, len(chain) + 1)):
            raise MigrationError(
                f"the migrations of {scope!r} are numbered {numbers}: they must be 1, 2, 3… "
                "with no gap and no number twice"
            )
    return by_scope


def all_migrations(contributed: Iterable[Sequence[Migration]]) -> list[Migration]:
    """The core's migrations and those plugins contribute (``state_migrations`` results)."""
    found = list(CORE_MIGRATIONS)
    for batch in contributed:
        for migration in batch or ():
            if not isinstance(migration, Migration):
                raise MigrationError(f"state_migrations returned {migration!r}, not a Migration")
            if migration.scope == CORE_SCOPE:
                raise MigrationError(
                    f"a plugin contributed migration {migration.version} to the core's scope "
                    f"{CORE_SCOPE!r}; a plugin's migrations use its own scope"
                )
            found.append(migration)
    chains(found)
    return found
