"""Schema versions and migrations: all-or-nothing, kill -9 safe, never a silent downgrade."""

from __future__ import annotations

import socket
import subprocess
import sys
from functools import cache
from pathlib import Path
from subprocess import PIPE
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from state_helpers import files
from state_helpers import unversioned as written_before_versions

from questfoundry.builtins.file_store import FileStore
from questfoundry.config import Config
from questfoundry.contracts.errors import MigrationError, StateError
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.records import Migration, Snapshot
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import Runtime
from questfoundry.state.backup import BackupPolicy
from questfoundry.state.exchange import import_state, read_state_file
from questfoundry.state.journal import JOURNAL_KEY, STAGE_PREFIX, process_started
from questfoundry.state.manager import MigrationManager, read_snapshot, run_steps
from questfoundry.state.migrations import CORE_MIGRATIONS, all_migrations, chains
from questfoundry.state.versions import VERSION_KEY, recorded

DRIVER = Path(__file__).with_name("state_crash_driver.py")
BEFORE: Snapshot = {
    "notes": {"text": "an idea"},
    "ideas/storm": {"n": 1},
    "legacy/kept": {"old": True},
    "book/topology": {"sections": [1, 2]},
    "runs/r1": {"steps": 3},
}
AFTER: Snapshot = {
    "legacy/notes": {"text": "an idea"},
    "legacy/ideas/storm": {"n": 1},
    "legacy/legacy/kept": {"old": True},
    "book/topology": {"sections": [1, 2]},
    "runs/r1": {"steps": 3},
}


def unversioned(root: Path, state: Snapshot = BEFORE) -> FileStore:
    return written_before_versions(root, state)


# ----------------------------------------------------------------------------- versions


def test_a_fresh_store_is_stamped_at_the_latest_version(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    assert MigrationManager(store).prepare() == {"questfoundry": 1}
    assert recorded(store) == {"questfoundry": 1}
    assert store.list_keys() == []


def test_a_store_with_documents_but_no_record_is_at_version_0(tmp_path: Path) -> None:
    store = unversioned(tmp_path / "state")
    assert MigrationManager(store).prepare() == {"questfoundry": 0}
    assert recorded(store) is None  # opening it changed nothing


def test_migrating_to_the_latest_version_gives_the_studio_layout(tmp_path: Path) -> None:
    store = unversioned(tmp_path / "state")
    result = MigrationManager(store, backups=BackupPolicy(tmp_path / "b")).migrate()
    assert read_snapshot(store) == AFTER
    assert recorded(store) == {"questfoundry": 1}
    assert result.changed == 6  # three moved: each a delete and a write
    assert result.backup is not None and result.backup.exists()
    log = store.get("_qf/history")
    assert log is not None
    assert log["migrations"][-1]["from"] == {} and log["migrations"][-1]["to"] == {
        "questfoundry": 1
    }
    assert MigrationManager(store).migrate().plan.steps == ()  # already there


def test_a_dry_run_changes_nothing(tmp_path: Path) -> None:
    store = unversioned(tmp_path / "state")
    before = files(tmp_path / "state")
    result = MigrationManager(store, backups=BackupPolicy(tmp_path / "b")).migrate(dry_run=True)
    assert result.changed == 6 and result.dry_run and result.backup is None
    assert "notes" in result.keys and "legacy/notes" in result.keys
    assert files(tmp_path / "state") == before
    assert not (tmp_path / "b").exists()


def test_a_store_newer_than_the_code_is_refused_naming_both_versions(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.set(VERSION_KEY, {"versions": {"questfoundry": 9}})
    store.set("book/topology", {"sections": []})
    with pytest.raises(MigrationError, match=r"questfoundry version 9 \(this code knows 1\)"):
        MigrationManager(store).prepare()
    with pytest.raises(MigrationError, match="never downgraded"):
        MigrationManager(store).migrate({"questfoundry": 0})
    assert recorded(store) == {"questfoundry": 9}


def test_a_scope_no_installed_plugin_knows_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.set(VERSION_KEY, {"versions": {"questfoundry": 1, "questfoundry-gone": 2}})
    with pytest.raises(MigrationError, match=r"questfoundry-gone version 2 \(this code knows 0\)"):
        MigrationManager(store).prepare()


def test_the_runtime_refuses_to_open_a_newer_store(tmp_path: Path) -> None:
    project = tmp_path / ".questfoundry"
    FileStore(project / "state").set(VERSION_KEY, {"versions": {"questfoundry": 5}})
    runtime = Runtime(Config(data={}, project_dir=project), get_plugin_manager())
    with runtime, pytest.raises(MigrationError, match="version 5"):
        runtime.state  # noqa: B018


def test_the_runtime_opens_and_stamps_a_fresh_store(tmp_path: Path) -> None:
    project = tmp_path / ".questfoundry"
    with Runtime(Config(data={}, project_dir=project), get_plugin_manager()) as runtime:
        runtime.state.set("book/topology", {"sections": []})
    assert recorded(FileStore(project / "state")) == {"questfoundry": 1}


def test_the_runtime_warns_once_when_the_state_is_older(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    project = tmp_path / ".questfoundry"
    unversioned(project / "state")
    with Runtime(Config(data={}, project_dir=project), get_plugin_manager()) as runtime:
        assert runtime.state.get("notes") == {"text": "an idea"}
    assert [r.getMessage() for r in caplog.records if r.name == "questfoundry.state.schema"] == [
        "the state's schema is questfoundry 0, older than this code's questfoundry 1: run "
        "`questfoundry state migrate` (a backup is written first)"
    ]


def test_an_unknown_target_version_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    with pytest.raises(MigrationError, match="versions 0 to 1 of 'questfoundry'"):
        MigrationManager(store).migrate({"questfoundry": 2})


# ----------------------------------------------------------------------------- failures


def _plugin_chain(fail_at: int | None = None) -> list[Migration]:
    """A plugin's two migrations; ``fail_at``: the one that raises half-way through."""

    def up(version: int) -> Any:
        def upgrade(state: Snapshot) -> Snapshot:
            out: Snapshot = {}
            for i, (key, doc) in enumerate(sorted(state.items())):
                if version == fail_at and i == len(state) // 2:
                    raise ValueError("cannot read this document")
                out[key] = {**doc, f"v{version}": True}
            return out

        return upgrade

    def down(version: int) -> Any:
        return lambda state: {
            k: {f: v for f, v in d.items() if f != f"v{version}"} for k, d in state.items()
        }

    return [Migration(n, up(n), down(n), f"step {n}", scope="qf-test") for n in (1, 2)]


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_migration_that_raises_half_way_leaves_the_store_exactly_as_it_was(
    tmp_path: Path, fail_at: int
) -> None:
    root = tmp_path / "state"
    store = unversioned(root)
    manager = MigrationManager(
        store, [*CORE_MIGRATIONS, *_plugin_chain(fail_at)], BackupPolicy(tmp_path / "b")
    )
    before = files(root)
    with pytest.raises(MigrationError, match=f"qf-test {fail_at} .upgrade. failed: cannot read"):
        manager.migrate()
    assert files(root) == before
    assert manager.prepare() == {"questfoundry": 0, "qf-test": 0}


class FailingStore(FileStore):
    """A file store whose ``set`` fails from the ``fail_from``-th call on (a disk filling up)."""

    def __init__(self, root: Path, fail_from: int) -> None:
        super().__init__(root)
        self.fail_from, self.sets = fail_from, 0

    def set(self, key: str, document: Any, ttl: float | None = None) -> None:
        self.sets += 1
        if self.sets >= self.fail_from:
            raise StateError(f"state {key!r} cannot be written: No space left on device")
        super().set(key, document, ttl)


def test_a_store_failing_while_the_change_is_staged_is_left_as_it_was(tmp_path: Path) -> None:
    root = tmp_path / "state"
    unversioned(root)
    before = files(root)
    store = FailingStore(root, fail_from=3)
    with pytest.raises(StateError, match="No space left"):
        MigrationManager(store).migrate()
    assert files(root) == before


def test_a_store_failing_after_the_commit_is_finished_when_next_opened(tmp_path: Path) -> None:
    root = tmp_path / "state"
    unversioned(root)
    store = FailingStore(root, fail_from=9)  # 8 writes staged, the first one applied fails
    with pytest.raises(StateError, match="committed but not yet applied"):
        MigrationManager(store).migrate()
    reopened = FileStore(root)
    assert MigrationManager(reopened).prepare() == {"questfoundry": 1}
    assert read_snapshot(reopened) == AFTER


@pytest.mark.slow
def test_a_kill_9_at_any_step_leaves_data_matching_its_recorded_version(tmp_path: Path) -> None:
    template = tmp_path / "template"
    unversioned(template / "state")
    # 6 changes + the version record + the log: backup, journal, 8 staged, commit, 8 applied,
    # done (20 steps), and 21: never killed
    steps = range(1, 22)
    subprocess.run(
        [sys.executable, str(DRIVER), "migrate", str(template), str(tmp_path / "work"), "1"]
        + [str(n) for n in steps],
        check=True,
    )
    outcomes = []
    for n in steps:
        store = FileStore(tmp_path / "work" / str(n) / "state")
        versions = MigrationManager(store).prepare()  # recovers
        snapshot = read_snapshot(store)
        assert (snapshot, versions) in ((BEFORE, {"questfoundry": 0}), (AFTER, {"questfoundry": 1}))
        assert store.get(JOURNAL_KEY) is None
        staged = quote(STAGE_PREFIX, safe="")
        leftovers = [p.name for p in store.root.iterdir() if p.name.startswith(staged)]
        assert leftovers == []
        outcomes.append(versions["questfoundry"])
    assert 0 in outcomes and 1 in outcomes  # killed before the commit, and after it
    assert outcomes == sorted(outcomes)  # once committed, it stays committed


def test_a_change_still_running_in_another_process_is_left_alone(tmp_path: Path) -> None:
    store = written_before_versions(tmp_path / "state", BEFORE)
    with subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=PIPE
    ) as other:
        journal = {
            "token": "t",
            "state": "staging",
            "what": "the migration to questfoundry 1",
            "host": socket.gethostname(),
            "pid": other.pid,
            "started": process_started(other.pid),
            "keys": ["notes"],
        }
        store.set(JOURNAL_KEY, journal)
        store.set(STAGE_PREFIX + "notes", {"deleted": True})
        with pytest.raises(StateError, match=f"by process {other.pid} is in progress"):
            MigrationManager(store).prepare()
        other.communicate(b"")
    assert MigrationManager(store).prepare() == {"questfoundry": 0}  # it died: rolled back
    assert store.get(JOURNAL_KEY) is None and store.get(STAGE_PREFIX + "notes") is None
    assert read_snapshot(store) == BEFORE


def test_a_journal_whose_pid_was_reused_is_recovered(tmp_path: Path) -> None:
    store = written_before_versions(tmp_path / "state", BEFORE)
    journal = {"token": "t", "state": "committed", "host": socket.gethostname(), "keys": []}
    store.set(JOURNAL_KEY, {**journal, "pid": 1, "started": "not pid 1's start"})
    assert MigrationManager(store).prepare() == {"questfoundry": 0}
    assert store.get(JOURNAL_KEY) is None


# ----------------------------------------------------------------------------- chains


def test_a_chain_with_a_gap_or_a_twin_is_refused() -> None:
    noop = dict
    with pytest.raises(MigrationError, match=r"numbered \[1, 3\]"):
        chains([Migration(1, noop, noop, scope="x"), Migration(3, noop, noop, scope="x")])
    with pytest.raises(MigrationError, match=r"numbered \[1, 1\]"):
        chains([Migration(1, noop, noop, scope="x"), Migration(1, noop, noop, scope="x")])


def test_a_plugin_may_not_migrate_the_cores_scope() -> None:
    with pytest.raises(MigrationError, match="own scope"):
        all_migrations([[Migration(2, dict, dict)]])


class MigratingPlugin:
    @hookimpl
    def state_migrations(self) -> list[Migration]:
        return _plugin_chain()


def test_plugins_contribute_migrations_that_the_manager_runs(tmp_path: Path) -> None:
    manager = get_plugin_manager(entry_points=False, plugins=[("qf-test", MigratingPlugin())])
    store = unversioned(tmp_path / "state")
    migrations = MigrationManager.for_plugins(store, manager)
    assert migrations.latest == {"questfoundry": 1, "qf-test": 2}
    migrations.migrate()
    assert recorded(store) == {"questfoundry": 1, "qf-test": 2}
    assert store.get("legacy/notes") == {"text": "an idea", "v1": True, "v2": True}
    migrations.migrate({"qf-test": 1})
    assert recorded(store) == {"questfoundry": 1, "qf-test": 1}
    assert store.get("legacy/notes") == {"text": "an idea", "v1": True}


# ----------------------------------------------------------------------------- round trips

_part = st.text(st.sampled_from("abcxyz-_. ü"), min_size=1, max_size=4).filter(
    lambda p: p not in (".", "..")
)
_key = st.one_of(
    st.lists(_part, min_size=1, max_size=3).map("/".join),
    st.sampled_from(["book/", "runs/", "legacy/", "legacy/legacy/", "_qfx/"]).flatmap(
        lambda head: _part.map(lambda tail: head + tail)
    ),
)
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)
_state = st.dictionaries(_key, st.dictionaries(st.text(max_size=3), _json, max_size=3))


@cache
def _every_migration() -> list[Migration]:
    """The core's migrations and every installed plugin's."""
    return all_migrations(get_plugin_manager().hook.state_migrations())


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(_state)
def test_every_migration_downgrades_back_to_the_identical_state(state: Snapshot) -> None:
    for migration in _every_migration():
        assert migration.downgrade(migration.upgrade(state)) == state


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(_state)
def test_the_chain_from_0_to_the_latest_and_back_round_trips(state: Snapshot) -> None:
    manager = MigrationManager(FileStore(Path("/nonexistent/never-opened")), _every_migration())
    zero = dict.fromkeys(manager.latest, 0)
    up = manager.plan(zero).steps
    down = manager.plan(manager.latest, zero).steps
    assert up and all(direction == "upgrade" for _, direction in up)
    assert run_steps(run_steps(state, up), down) == state


def test_a_store_migrated_up_and_down_again_holds_what_it_held(tmp_path: Path) -> None:
    store = unversioned(tmp_path / "state")
    manager = MigrationManager(store, backups=BackupPolicy(tmp_path / "b", keep=2))
    for _ in range(2):
        manager.migrate()
        assert read_snapshot(store) == AFTER
        manager.migrate({"questfoundry": 0})
        assert read_snapshot(store) == BEFORE
    assert len(BackupPolicy(tmp_path / "b").backups()) == 2  # four written, two kept


def test_a_backup_restores_the_state_it_was_taken_of(tmp_path: Path) -> None:
    secretish = {"note": "key sk-abcdefghijklmnopqrstuvwx"}
    store = unversioned(tmp_path / "state", {**BEFORE, "ideas/key": secretish})
    result = MigrationManager(store, backups=BackupPolicy(tmp_path / "b")).migrate()
    assert result.backup is not None
    backup = read_state_file(result.backup, {"questfoundry": 1})
    import_state(store, backup, "replace")
    assert read_snapshot(store) == {**BEFORE, "ideas/key": secretish}  # exact, nothing masked
    assert recorded(store) == {}
