"""``questfoundry state``: version, migrate, export, import, repair."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from questfoundry.cli.app import App, cli, json_option, pass_app, print_json, print_table

if TYPE_CHECKING:
    from questfoundry.state.exchange import Mode
    from questfoundry.state.manager import MigrationManager

#: where opening a store warns that its schema is older (the state commands say it themselves)
SCHEMA_LOGGER = "questfoundry.state.schema"


@cli.group()
def state() -> None:
    """Inspect, migrate, export, import and repair the project's state (the studio's documents).

    The store is `state.backend` in config.yml (`file` by default: one JSON file per document in
    .questfoundry/state). See docs/state.md.
    """


@state.command("version")
@json_option
@pass_app
def state_version(app: App, as_json: bool) -> None:
    """The schema versions the state records, and the newest this code knows.

    One row per scope: `questfoundry` for the core's documents, one per plugin that keeps its
    own. When a recorded version is older, `questfoundry state migrate` brings it up to date.
    """
    manager = _manager(app)
    current = manager.prepare()
    rows = [
        {"scope": scope, "version": current.get(scope, 0), "latest": manager.latest.get(scope, 0)}
        for scope in sorted({*current, *manager.latest})
    ]
    if as_json:
        print_json({"scopes": rows, "up_to_date": all(r["version"] == r["latest"] for r in rows)})
        return
    print_table("State schema", ("scope", "version", "latest"), [list(r.values()) for r in rows])


@state.command("migrate")
@click.option(
    "--to",
    "targets",
    multiple=True,
    metavar="[SCOPE=]N",
    help="Version to reach: N for the core's scope, SCOPE=N for a plugin's (repeatable). "
    "Default: the latest of every scope. A lower number downgrades.",
)
@click.option("--dry-run", is_flag=True, help="Say what would change; write nothing.")
@json_option
@pass_app
def state_migrate(app: App, targets: tuple[str, ...], dry_run: bool, as_json: bool) -> None:
    """Migrate the state to another schema version (default: the latest).

    A backup of the whole state is written first (`state.backups` in config.yml: how many are
    kept, and where). The migrations run in memory; one that fails changes nothing. The result is
    written as one change: interrupted, even by kill -9, it is finished or undone when the store
    is next opened. Run it while nothing else uses the state.
    """
    from questfoundry.state.versions import describe

    manager = _manager(app, backups=True)
    result = manager.migrate(_targets(targets), dry_run=dry_run)
    steps = result.plan.describe()
    data = {
        "from": result.plan.start,
        "to": result.plan.target,
        "steps": steps,
        "changed": result.changed,
        "backup": str(result.backup) if result.backup else None,
        "dry_run": dry_run,
    }
    if as_json:
        print_json(data)
        return
    if not result.plan.steps:
        click.echo(f"The state is already at {describe(result.plan.target)}.")
        return
    for line in steps:
        click.echo(line)
    verb = "would change" if dry_run else "changed"
    click.echo(f"{describe(result.plan.target)}: {verb} {_documents(result.changed)}.")
    if result.backup:
        click.echo(f"Backup: {result.backup}")


@state.command("export")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--include-history",
    is_flag=True,
    help="Add the history: the migration log and the studio's run records (runs/…).",
)
@json_option
@pass_app
def state_export(app: App, path: Path, include_history: bool, as_json: bool) -> None:
    """Write the whole state to PATH: JSON (.json) or YAML (.yaml, .yml).

    Secrets are masked (`***`): the config's API keys and passwords, registered keys and
    anything shaped like one. The file is written document by document, so a large state needs
    little memory, and appears only when complete.
    """
    from questfoundry.state.exchange import Redactor, export_state

    store = _store(app)
    redactor = Redactor.for_config(app.config)
    with _progress("Exporting") as progress:
        result = export_state(
            store, path, include_history=include_history, redactor=redactor, progress=progress
        )
    data = {"path": str(path), "documents": result.documents, "masked": result.masked}
    if as_json:
        print_json(data)
        return
    click.echo(f"Exported {_documents(result.documents)} to {path}.")
    if result.masked:
        click.echo(f"Warning: masked {result.masked} secret-looking values (***).", err=True)


@state.command("import")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--merge", is_flag=True, help="Write over the store's documents, keep the others.")
@click.option("--replace", is_flag=True, help="Make the store hold exactly the file's documents.")
@json_option
@pass_app
def state_import(app: App, path: Path, merge: bool, replace: bool, as_json: bool) -> None:
    """Read a state file (from `state export`, or a backup) into the store.

    The whole file is checked first — format, versions, every key and document — and a bad file
    changes nothing. Without an option the store must hold no documents; --merge needs the file
    and the store at the same schema versions. The import is written as one change.
    """
    from questfoundry.contracts.errors import StateError
    from questfoundry.state.exchange import import_state, read_state_file

    if merge and replace:
        raise StateError("--merge and --replace exclude each other: choose one")
    manager = _manager(app)
    manager.prepare()
    state_file = read_state_file(path, manager.latest)
    mode: Mode = "merge" if merge else "replace" if replace else "empty"
    with _progress("Importing") as progress:
        steps = 0
        total = 2 * len(state_file.documents) + 2

        def step(name: str) -> None:
            nonlocal steps
            steps += 1
            progress(min(steps, total), total)

        result = import_state(manager.store, state_file, mode, step=step)
    data = {"path": str(path), "written": result.written, "deleted": result.deleted}
    if as_json:
        print_json(data)
        return
    deleted = f", deleted {result.deleted}" if result.deleted else ""
    click.echo(f"Imported {_documents(result.written)} from {path}{deleted}.")


@state.command("repair")
@click.option(
    "--discard",
    is_flag=True,
    help="Drop a committed change that cannot be finished, keeping the documents as they are.",
)
@json_option
@pass_app
def state_repair(app: App, discard: bool, as_json: bool) -> None:
    """Undo or finish a change (an import, a migration) left half-done that opening the store
    could not: the error that sent you here names its journal.

    A change that had not committed is undone: the documents are as they were before it. A
    committed one is finished; if it cannot be, --discard drops the rest of it (or restore a
    backup with `questfoundry state import BACKUP --replace`). Run it while nothing else uses
    the state.
    """
    from questfoundry.state.journal import repair

    store = app.runtime.open_state()
    try:
        outcome = repair(store, discard=discard)
    finally:
        store.close()
    if as_json:
        print_json({"repaired": outcome is not None, "outcome": outcome})
        return
    click.echo(f"Repaired: {outcome}." if outcome else "Nothing to repair: no change is half-done.")


# ----------------------------------------------------------------------------- helpers


def _store(app: App) -> Any:
    """The runtime's store, without the "migrate me" warning the state commands deal with."""
    logger = logging.getLogger(SCHEMA_LOGGER)
    previous, logger.disabled = logger.disabled, True
    try:
        return app.runtime.state
    finally:
        logger.disabled = previous


def _manager(app: App, backups: bool = False) -> MigrationManager:
    from questfoundry.state.backup import BackupPolicy
    from questfoundry.state.manager import MigrationManager

    policy = None
    if backups:
        policy = BackupPolicy.from_settings(app.config.section("state"), app.runtime.context)
    return MigrationManager.for_plugins(_store(app), app.manager, policy)


def _documents(count: int) -> str:
    return f"{count} document" + ("" if count == 1 else "s")


def _targets(values: tuple[str, ...]) -> dict[str, int] | None:
    from questfoundry.state.versions import CORE_SCOPE

    if not values:
        return None
    targets: dict[str, int] = {}
    for value in values:
        scope, sep, number = value.rpartition("=")
        if not number.isdigit():
            raise click.BadParameter(f"{value!r} is not N or SCOPE=N", param_hint="--to")
        targets[scope if sep else CORE_SCOPE] = int(number)
    return targets


@contextmanager
def _progress(label: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr when it is a terminal; otherwise nothing."""
    if not sys.stderr.isatty():
        yield lambda done, total: None
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
