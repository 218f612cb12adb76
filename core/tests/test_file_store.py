"""The built-in ``file`` state store."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from state_crash_driver import KEYS, written

from questfoundry.builtins.file_store import PER_KEY_LOCKS, TEMP_PREFIX, FileStore, make_file_store
from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.errors import StateError
from questfoundry.testing.state_contract import StateStoreContract, StoreOpener


class TestFileStore(StateStoreContract):
    @pytest.fixture
    def store_opener(self, tmp_path: Path) -> StoreOpener:
        return StoreOpener(FileStore, (tmp_path / "state",))

    @pytest.fixture
    def store(self, store_opener: StoreOpener) -> FileStore:
        store = store_opener()
        assert isinstance(store, FileStore)
        return store


def test_the_factory_resolves_the_path_against_the_project(tmp_path: Path) -> None:
    context = BackendContext(project_dir=tmp_path / ".questfoundry")
    store = make_file_store({}, context)
    assert store.root == tmp_path / ".questfoundry" / "state"
    assert make_file_store({"path": "elsewhere"}, context).root == tmp_path / "elsewhere"


def test_a_crash_mid_write_leaves_the_previous_version(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.set("doc", {"v": 1})
    (tmp_path / "%tmp-half-written.json").write_bytes(b'{"v": 2, "trunc')  # what a crash leaves
    assert store.get("doc") == {"v": 1}
    assert store.list_keys() == ["doc"]


def test_a_corrupt_document_is_a_clear_state_error(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.set("doc", {"v": 1})
    (tmp_path / "doc.json").write_bytes(b"{not json")
    with pytest.raises(StateError, match="cannot be read"):
        store.get("doc")
    (tmp_path / "doc.json").write_bytes(b"[1, 2]")
    with pytest.raises(StateError, match="not a JSON object"):
        store.get("doc")


def test_an_empty_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StateError):
        FileStore(tmp_path).get("")


def test_an_unwritable_folder_is_a_state_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("in the way")
    with pytest.raises(StateError, match="cannot be written"):
        FileStore(blocker / "state").set("doc", {"v": 1})


def test_a_write_that_cannot_replace_its_file_leaves_no_temporary_file(tmp_path: Path) -> None:
    (tmp_path / "doc.json").mkdir()  # a folder where the document's file goes
    (tmp_path / "doc.json" / "inside").touch()
    with pytest.raises(StateError, match="cannot be written"):
        FileStore(tmp_path).set("doc", {"v": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["%lock", "doc.json"]


def test_a_store_in_a_folder_not_yet_made_lists_nothing(tmp_path: Path) -> None:
    assert FileStore(tmp_path / "absent").list_keys() == []


DRIVER = Path(__file__).with_name("state_crash_driver.py")


@pytest.mark.slow
def test_writers_killed_mid_write_leave_only_whole_documents(tmp_path: Path) -> None:
    root = tmp_path / "state"
    subprocess.run([sys.executable, str(DRIVER), "writes", str(root), "100", "7"], check=True)
    store = FileStore(root)  # opening cleans what the killed writers left
    assert [p.name for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)] == []
    assert store.list_keys() == sorted(KEYS)
    for key in KEYS:
        document = store.get(key)
        assert document is not None
        assert document == written(document["writer"], document["i"])
    assert store.get(KEYS[0])["writer"] == 99  # the last writer's first write was complete


def test_a_writer_waits_only_for_writers_of_its_own_key(tmp_path: Path) -> None:
    """An ``update`` holding key "a" (its change waits) keeps other writers of "a" waiting, never
    a writer of "b": each key has its own lock (one byte of ``%lock`` each, on Linux)."""
    if not PER_KEY_LOCKS:
        pytest.skip("this system has no open file description locks: one writer at a time")
    store = FileStore(tmp_path)
    inside, release = threading.Event(), threading.Event()

    def slow(document: dict[str, Any] | None) -> dict[str, Any]:
        inside.set()
        assert release.wait(10)
        return {"by": "update"}

    with ThreadPoolExecutor(3) as pool:
        try:
            updating = pool.submit(store.update, "a", slow)
            assert inside.wait(10)
            setting_a = pool.submit(store.set, "a", {"by": "set"})
            pool.submit(store.set, "b", {"by": "set"}).result(timeout=5)  # though "a" is held
            assert store.get("b") == {"by": "set"}
            time.sleep(0.05)  # room for a writer of "a" that did not wait to get in: none must
            assert not setting_a.done() and store.get("a") is None
        finally:
            release.set()
        updating.result(10)
        setting_a.result(10)
    assert store.get("a") == {"by": "set"}  # the set waited for the update, then replaced it


def test_writes_are_forced_to_disk_once_per_sync_not_once_per_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    forced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        forced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    store = FileStore(tmp_path)
    for n in range(30):
        store.set(f"book/{n % 10}", {"n": n})
    store.delete("book/9")
    assert forced == []  # a kill -9 needs only the rename: the writes never waited on the disk
    store.sync()
    assert len(forced) == 9 + 1  # each file written once, whatever its rewrites; the folder once
    store.sync()
    assert len(forced) == 10  # nothing new to sync
    store.set("book/0", {"n": 99})
    store.close()  # closing syncs what is left
    assert len(forced) == 12
