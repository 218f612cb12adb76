"""Hostile state files and stuck journals (issue 19, items 1, 3 and 7): one line, never wedged.

Before: an import of a key with a 250-character part failed while staging (``File name too
long``), its rollback failed the same way, and ``_qf/journal`` wedged every later command until
it was deleted by hand; a 633-byte YAML alias bomb ran past 60 s, a 447-byte one was imported as
a million values (138 MB RSS); duplicate keys were imported last-wins, and NFC/NFD twins, C1 and
U+2028 keys were stored as distinct keys.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import tracemalloc
import unicodedata
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from questfoundry.builtins.file_store import FileStore
from questfoundry.cli import cli
from questfoundry.contracts.errors import StateError
from questfoundry.state import exchange
from questfoundry.state.exchange import read_state_file
from questfoundry.state.journal import JOURNAL_KEY, STAGE_PREFIX
from questfoundry.testing.state_contract import LONGEST_KEY

KNOWN = {"questfoundry": 1}
HEAD = '{"questfoundry_state": 1, "schema_version": {"questfoundry": 1}, "documents": '


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project (memory cache, file state) whose config.yml this returns."""
    config = tmp_path / ".questfoundry" / "config.yml"
    config.parent.mkdir()
    config.write_text("caching: {backend: memory}\n")
    return config


def qf(config: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "state", *args])


def state_file(path: Path, documents: str) -> Path:
    path.write_text(HEAD + documents + "}", encoding="utf-8")
    return path


def store_of(config: Path) -> FileStore:
    return FileStore(config.parent / "state")


def dead_pid() -> int:
    """The pid of a process that has ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def leave_journal(store: FileStore, state: str, keys: list[str]) -> None:
    """A journal as a process that died mid-change leaves it."""
    store.set(
        JOURNAL_KEY,
        {
            "token": "t",
            "state": state,
            "what": "the import of old.json",
            "host": socket.gethostname(),
            "pid": dead_pid(),
            "started": None,
            "keys": keys,
        },
    )


def block(store: FileStore, key: str) -> Path:
    """A folder where ``key``'s file goes: writing and removing that file both fail."""
    path = store.path_of(key)
    path.mkdir(parents=True)
    return path


def one_line(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# ----------------------------------------------------------------------------- item 1


@pytest.mark.slow
def test_a_key_part_over_200_bytes_is_refused_before_anything_is_written(
    project: Path, tmp_path: Path
) -> None:
    bad = state_file(tmp_path / "bad.json", json.dumps({"book/" + "x" * 250: {"a": 1}}))
    error = one_line(qf(project, "import", str(bad)))
    assert "has a part of 250 bytes; a part may have at most 200" in error
    assert len(error) < 300
    assert store_of(project).get(JOURNAL_KEY) is None
    assert qf(project, "version").exit_code == 0
    good = state_file(tmp_path / "good.json", '{"book/a": {"a": 1}}')
    assert qf(project, "import", str(good)).exit_code == 0


def test_an_import_whose_staging_fails_is_undone_whatever_the_key(
    project: Path, tmp_path: Path
) -> None:
    store = store_of(project)
    obstacle = block(store, STAGE_PREFIX + "book/b")
    path = state_file(tmp_path / "in.json", '{"book/a": {"n": 1}, "book/b": {"n": 2}}')
    error = one_line(qf(project, "import", str(path)))
    assert "the import of in.json failed; nothing was changed" in error
    assert store.get(JOURNAL_KEY) is None
    assert store.get(STAGE_PREFIX + "book/a") is None
    assert store.list_keys() == []
    obstacle.rmdir()
    assert qf(project, "import", str(path)).exit_code == 0
    assert store.get("book/b") == {"n": 2}


@pytest.mark.slow
def test_a_journal_that_cannot_be_undone_names_its_file_and_the_repair_command(
    project: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_of(project)
    assert qf(project, "version").exit_code == 0  # a store with its versions recorded
    leave_journal(store, "staging", ["book/a"])
    block(store, STAGE_PREFIX + "book/a")
    journal = str(store.path_of(JOURNAL_KEY))

    caplog.clear()
    assert qf(project, "version").exit_code == 0  # the documents are as they were: reading goes on
    assert journal in caplog.text and "`questfoundry state repair`" in caplog.text
    path = state_file(tmp_path / "in.json", '{"book/c": {"n": 3}}')
    error = one_line(qf(project, "import", str(path)))
    assert journal in error and "run `questfoundry state repair`" in error

    repaired = qf(project, "repair")
    assert repaired.exit_code == 0
    assert "rolled back the import of old.json" in repaired.stdout
    assert "'book/a' cannot be moved or removed" in repaired.stdout
    assert qf(project, "import", str(path)).exit_code == 0
    assert qf(project, "repair").stdout == "Nothing to repair: no change is half-done.\n"


def test_the_journal_an_older_version_wedged_the_store_with_heals_when_opened(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_of(project)
    leave_journal(store, "staging", ["book/" + "x" * 250])  # the key issue 19 imported
    assert qf(project, "version").exit_code == 0
    assert "rolled back the import of old.json, which was interrupted" in caplog.text
    assert store.get(JOURNAL_KEY) is None


@pytest.mark.slow
def test_a_committed_change_that_cannot_be_finished_waits_for_repair(project: Path) -> None:
    store = store_of(project)
    assert qf(project, "version").exit_code == 0
    store.set(STAGE_PREFIX + "book/a", {"document": {"n": 1}})
    leave_journal(store, "committed", ["book/a"])
    block(store, "book/a")

    error = one_line(qf(project, "version"))
    assert "was interrupted after it committed and cannot be completed" in error
    assert "run `questfoundry state repair`" in error
    refused = one_line(qf(project, "repair"))
    assert "--discard" in refused and "state import BACKUP --replace" in refused
    discarded = qf(project, "repair", "--discard")
    assert discarded.exit_code == 0, discarded.output
    assert "1 documents were not changed" in discarded.stdout
    assert qf(project, "version").exit_code == 0


@pytest.mark.slow
def test_a_damaged_journal_is_named_and_repair_removes_it(project: Path) -> None:
    store = store_of(project)
    assert qf(project, "version").exit_code == 0
    store.path_of(JOURNAL_KEY).write_text("{not json")
    error = one_line(qf(project, "version"))
    assert "journal of an interrupted change cannot be read" in error
    assert str(store.path_of(JOURNAL_KEY)) in error
    assert qf(project, "repair").exit_code == 0
    assert qf(project, "version").exit_code == 0


def test_the_longest_key_imports_and_exports(project: Path, tmp_path: Path) -> None:
    path = state_file(tmp_path / "in.json", json.dumps({LONGEST_KEY: {"n": 1}}))
    assert qf(project, "import", str(path)).exit_code == 0
    out = tmp_path / "out.json"
    assert qf(project, "export", str(out)).exit_code == 0
    assert json.loads(out.read_text())["documents"] == {LONGEST_KEY: {"n": 1}}


# ----------------------------------------------------------------------------- item 7


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("twice.json", HEAD + '{"book/a": {"v": 1}, "book/a": {"v": 2}}}'),
        ("twice.yaml", "questfoundry_state: 1\ndocuments:\n  book/a: {v: 1}\n  book/a: {v: 2}\n"),
    ],
)
def test_a_key_named_twice_in_an_import_file_is_refused_naming_it(
    tmp_path: Path, name: str, text: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(StateError, match=r"'book/a'") as caught:
        read_state_file(path, KNOWN)
    assert "twice" in str(caught.value) or "duplicate key" in str(caught.value)


def test_two_spellings_of_one_key_in_an_import_file_are_refused(tmp_path: Path) -> None:
    nfc, nfd = (unicodedata.normalize(form, "book/café") for form in ("NFC", "NFD"))
    path = state_file(tmp_path / "in.json", json.dumps({nfc: {"v": 1}, nfd: {"v": 2}}))
    with pytest.raises(StateError, match="'book/café' is there twice"):
        read_state_file(path, KNOWN)


def test_an_imported_key_is_kept_in_nfc(project: Path, tmp_path: Path) -> None:
    nfd = unicodedata.normalize("NFD", "book/café")
    assert (
        qf(
            project, "import", str(state_file(tmp_path / "in.json", json.dumps({nfd: {}})))
        ).exit_code
        == 0
    )
    assert store_of(project).list_keys() == [unicodedata.normalize("NFC", nfd)]


@pytest.mark.parametrize("key", ["book/a\u2028b", "book/a\u2029b", "book/c\x85d", "book/e\x9bf"])
def test_keys_holding_separators_or_c1_controls_are_refused(tmp_path: Path, key: str) -> None:
    path = state_file(tmp_path / "in.json", json.dumps({key: {}}))
    with pytest.raises(StateError, match=r"holds a control character \(U\+"):
        read_state_file(path, KNOWN)


# ----------------------------------------------------------------------------- item 3


def bomb(levels: int) -> str:
    """A state file whose documents are lists of ten aliases of the one before: 10**levels."""
    lines = ["questfoundry_state: 1", "schema_version: {questfoundry: 1}", "documents:"]
    lines.append("  book/a: {v: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]}")
    for level in range(1, levels):
        aliases = ",".join([f"*a{level - 1}"] * 10)
        lines.append(f"  book/b{level}: {{v: &a{level} [{aliases}]}}")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [6, 9])
def test_a_yaml_alias_bomb_is_refused_at_once_in_little_memory(tmp_path: Path, levels: int) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb(levels))
    assert path.stat().st_size < 700
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(StateError) as caught:
            read_state_file(path, KNOWN)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 2
    assert peak < 10 * 1024 * 1024
    assert "the YAML's aliases repeat more than 100,000 values at line" in str(caught.value)


def test_aliases_a_state_file_may_hold_are_fine(tmp_path: Path) -> None:
    path = tmp_path / "in.yaml"
    path.write_text(
        "questfoundry_state: 1\ndocuments:\n  book/a: {tags: &t [storm, sea]}\n"
        "  book/b: {tags: *t}\n"
    )
    assert read_state_file(path, KNOWN).documents["book/b"] == {"tags": ["storm", "sea"]}


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", HEAD + '{"book/a": {"v": ' + "[" * 200_000 + "]" * 200_000 + "}}}"),
        (
            "deep.yaml",
            "questfoundry_state: 1\ndocuments:\n  book/a: {v: " + "[" * 70 + "]" * 70 + "}\n",
        ),
    ],
)
def test_deep_nesting_is_one_line(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(StateError) as caught:
        read_state_file(path, KNOWN)
    assert "nests deeper than 64 levels" in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("bound", "said"),
    [
        ("MAX_DOCUMENT_BYTES", r"document 'book/big' is 2,012 bytes; a document may have at most"),
        ("MAX_FILE_BYTES", r"in\.json is larger than 1 KiB: not a state file"),
    ],
)
def test_a_document_or_file_over_its_size_bound_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bound: str, said: str
) -> None:
    monkeypatch.setattr(exchange, bound, 1024)
    path = state_file(tmp_path / "in.json", json.dumps({"book/big": {"text": "x" * 2000}}))
    with pytest.raises(StateError, match=said):
        read_state_file(path, KNOWN)
