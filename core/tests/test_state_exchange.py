"""Export and import: identical round trips, whole-file checks, no secrets, flat memory."""

from __future__ import annotations

import json
import tracemalloc
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from state_helpers import files

from questfoundry.builtins.file_store import FileStore
from questfoundry.config import Config
from questfoundry.contracts.errors import MigrationError, StateError
from questfoundry.contracts.protocols import Capability
from questfoundry.kit.redaction import register_secret
from questfoundry.kit.state_keys import check_key
from questfoundry.state.exchange import Redactor, export_state, import_state, read_state_file
from questfoundry.state.manager import MigrationManager, read_snapshot
from questfoundry.state.versions import recorded

KNOWN = {"questfoundry": 1}
DOCUMENTS: dict[str, dict[str, Any]] = {
    "book/topology": {"sections": [1, 2, 3], "title": "The Lighthouse", "ratio": 0.1},
    "book/sections/1": {"text": "Storm.\nThe keeper waits — «encore»", "choices": []},
    "book/sections/2": {"nested": {"deep": {"deeper": [None, True, False, -7, 2**60]}}},
    "book/empty": {},
    "legacy/odd key: ü/ß": {"quote": 'it\'s "quoted": yes', "colon": "a: b", "hash": "#x"},
    "runs/abc": {"steps": ["story_spark"], "cost": "0.0123"},
}


def filled(root: Path) -> FileStore:
    """A store at the latest schema, with a migration in its log, holding :data:`DOCUMENTS`."""
    store = FileStore(root)
    store.set("notes", {"a": 1})
    MigrationManager(store).migrate()  # notes -> legacy/notes, and one log entry
    for key, document in DOCUMENTS.items():
        store.set(key, document)
    return store


def fresh(root: Path) -> FileStore:
    store = FileStore(root)
    MigrationManager(store).prepare()
    return store


# ----------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("suffix", [".json", ".yaml", ".yml"])
@pytest.mark.parametrize("history", [False, True])
def test_export_import_export_gives_identical_files(
    tmp_path: Path, suffix: str, history: bool
) -> None:
    source = filled(tmp_path / "a")
    first, second = tmp_path / f"first{suffix}", tmp_path / f"second{suffix}"
    export_state(source, first, include_history=history, redactor=Redactor())
    target = fresh(tmp_path / "b")
    import_state(target, read_state_file(first, KNOWN))
    export_state(target, second, include_history=history, redactor=Redactor())
    assert second.read_text("utf-8") == first.read_text("utf-8")
    expected = read_snapshot(source)
    if not history:
        expected = {k: v for k, v in expected.items() if not k.startswith("runs/")}
    assert read_snapshot(target) == expected
    assert recorded(target) == recorded(source)
    assert (target.get("_qf/history") == source.get("_qf/history")) is history


def test_history_is_the_migration_log_and_the_run_records(tmp_path: Path) -> None:
    store = filled(tmp_path / "a")
    plain = read_state_file(export_state(store, tmp_path / "p.json").path, KNOWN)
    full = read_state_file(
        export_state(store, tmp_path / "h.json", include_history=True).path, KNOWN
    )
    assert "runs/abc" not in plain.documents and plain.migrations is None
    assert full.documents["runs/abc"] == DOCUMENTS["runs/abc"]
    assert full.migrations is not None and full.migrations[0]["to"] == {"questfoundry": 1}


class DictStore:
    """Just enough of a store to export from: documents in a dict."""

    capabilities: frozenset[str] = frozenset()

    def __init__(self, documents: dict[str, dict[str, Any]]) -> None:
        self.documents = {**documents, "_qf/schema_version": {"versions": {"questfoundry": 1}}}

    def get(self, key: str) -> dict[str, Any] | None:
        return self.documents.get(key)

    def list_keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self.documents if k.startswith(prefix) and k[:4] != "_qf/")


_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=8)
_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_part = st.text(  # what a key may hold: no surrogate, control character or line separator
    st.characters(blacklist_categories=["Cs", "Cc", "Zl", "Zp"], blacklist_characters="/\\"),
    min_size=1,
    max_size=6,
).filter(lambda part: part not in (".", ".."))
_documents = st.dictionaries(
    st.lists(_part, min_size=1, max_size=2)
    .map(lambda parts: unicodedata.normalize("NFC", "/".join(parts)))  # as a store keeps keys
    .filter(lambda k: k[:4] != "_qf/"),
    st.dictionaries(_text, _value, max_size=3),
    max_size=4,
)


@pytest.mark.slow
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_documents)
def test_any_documents_survive_a_trip_through_either_format(
    tmp_path: Path, documents: dict[str, dict[str, Any]]
) -> None:
    for suffix in (".json", ".yaml"):
        path = tmp_path / f"any{suffix}"
        export_state(DictStore(documents), path)  # type: ignore[arg-type]
        assert read_state_file(path, KNOWN).documents == documents


# ----------------------------------------------------------------------------- bad files

GOOD_HEAD = '{"questfoundry_state": 1, "schema_version": {"questfoundry": 1}, '
BAD_FILES = {
    "not json": ("bad.json", '{"questfoundry_state": 1, "documents": {'),
    "not a state file": ("bad.json", '{"documents": {}}'),
    "newer schema": (
        "bad.json",
        '{"questfoundry_state": 1, "schema_version": {"questfoundry": 3}, "documents": {}}',
    ),
    "parent key": ("bad.json", GOOD_HEAD + '"documents": {"ok": {}, "../escape": {}}}'),
    "absolute key": ("bad.json", GOOD_HEAD + '"documents": {"/etc/passwd": {}}}'),
    "nul key": ("bad.json", GOOD_HEAD + '"documents": {"a\\u0000b": {}}}'),
    "internal key": ("bad.json", GOOD_HEAD + '"documents": {"_qf/schema_version": {}}}'),
    "not an object": ("bad.json", GOOD_HEAD + '"documents": {"book/a": [1, 2]}}'),
    "unknown top key": ("bad.json", GOOD_HEAD + '"documents": {}, "extra": 1}'),
    "bad log": ("bad.json", GOOD_HEAD + '"documents": {}, "migrations": {"a": 1}}'),
    "yaml date": (
        "bad.yaml",
        "questfoundry_state: 1\nschema_version: {questfoundry: 1}\n"
        "documents:\n  book/a: {when: 2026-12-02}\n",
    ),
    "yaml number key": (
        "bad.yaml",
        "questfoundry_state: 1\nschema_version: {}\ndocuments:\n  book/a: {1: one}\n",
    ),
    "yaml syntax": ("bad.yml", "questfoundry_state: 1\ndocuments: [unclosed\n"),
    "wrong extension": ("bad.txt", "{}"),
}


@pytest.mark.parametrize("name", BAD_FILES)
def test_a_bad_file_changes_nothing(tmp_path: Path, name: str) -> None:
    store = filled(tmp_path / "state")
    before = files(tmp_path / "state")
    filename, text = BAD_FILES[name]
    path = tmp_path / filename
    path.write_text(text, "utf-8")
    with pytest.raises(StateError) as error:
        import_state(store, read_state_file(path, KNOWN), "merge")
    assert "\n" not in str(error.value)
    assert files(tmp_path / "state") == before


def test_a_key_outside_the_store_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(GOOD_HEAD + '"documents": {"book/../../etc/passwd": {}}}')
    with pytest.raises(StateError, match=r"'book/\.\./\.\./etc/passwd' has an empty, '\.' or"):
        read_state_file(path, KNOWN)


@pytest.mark.parametrize("key", ["../x", "/x", "a/./b", "a\0b", "a\\b", "", "x/", "\ud800"])
def test_keys_that_could_leave_a_store_are_refused(key: str) -> None:
    with pytest.raises(StateError):
        check_key(key)


@pytest.mark.parametrize("key", ["book/sections/1", ".hidden", "..dots", "a b/ü", "%2e%2e"])
def test_ordinary_keys_pass(key: str) -> None:
    assert check_key(key) == key


# ----------------------------------------------------------------------------- modes


def _file(tmp_path: Path, documents: dict[str, Any], versions: str = '{"questfoundry": 1}') -> Path:
    path = tmp_path / "in.json"
    path.write_text(
        json.dumps(
            {
                "questfoundry_state": 1,
                "schema_version": json.loads(versions),
                "documents": documents,
            }
        )
    )
    return path


def test_import_into_a_store_holding_documents_needs_merge_or_replace(tmp_path: Path) -> None:
    store = filled(tmp_path / "state")
    path = _file(tmp_path, {"book/new": {"n": 1}})
    with pytest.raises(StateError, match="--merge"):
        import_state(store, read_state_file(path, KNOWN))
    import_state(store, read_state_file(path, KNOWN), "merge")
    assert store.get("book/new") == {"n": 1} and store.get("book/topology") is not None
    import_state(store, read_state_file(path, KNOWN), "replace")
    assert store.list_keys() == ["book/new"]


def test_merge_refuses_a_file_at_another_schema_version(tmp_path: Path) -> None:
    store = filled(tmp_path / "state")
    path = _file(tmp_path, {"new": {"n": 1}}, versions="{}")
    with pytest.raises(MigrationError, match="migrate one of them first"):
        import_state(store, read_state_file(path, KNOWN), "merge")
    assert store.get("new") is None


def test_an_old_file_imports_into_an_empty_store_at_its_own_version(tmp_path: Path) -> None:
    store = fresh(tmp_path / "state")
    import_state(store, read_state_file(_file(tmp_path, {"notes": {"n": 1}}, "{}"), KNOWN))
    assert recorded(store) == {}
    MigrationManager(store).migrate()
    assert store.get("legacy/notes") == {"n": 1}


# ----------------------------------------------------------------------------- secrets


def test_secrets_never_reach_an_export(tmp_path: Path) -> None:
    config = Config(
        data={
            "providers": {"text": {"openai": {"api_key": "hunter2-live-credential"}}},
            "state": {"redis_url": "redis://:pa55word-xyz@cache:6379/0"},
        }
    )
    register_secret("registered-secret-value")
    store = fresh(tmp_path / "state")
    store.set(
        "book/leaky",
        {
            "openai": "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
            "google": "AIzaSyA-abcdefghijklmnopqrstuvwxyz0123",
            "pasted": "my key is hunter2-live-credential, keep it safe",
            "header": "Authorization: Bearer abc.def.ghi",
            "url": "redis://:pa55word-xyz@cache:6379/0",
            "listed": ["registered-secret-value"],  # "registered" itself is a run of the secret
            "registered-secret-value": "in a key too",
        },
    )
    for suffix in (".json", ".yaml"):
        path = tmp_path / f"out{suffix}"
        result = export_state(store, path, redactor=Redactor.for_config(config))
        text = path.read_text("utf-8")
        for secret in (
            "sk-proj-abcdefghij",
            "AIzaSyA-abcdefghij",
            "hunter2-live-credential",
            "abc.def.ghi",
            "pa55word-xyz",
            "registered-secret-value",
        ):
            assert secret not in text
        assert result.masked == 7
        assert "keep it safe" in text  # the rest of the text is kept


_fragments = st.sampled_from(
    [
        *("sk-abcdefgh", "Bearer x.y", "authorization: t", "api_key=", "redis://u:pw12@h"),
        *("AIza", "plain", "0123456789abcdefghij", "hunter2-live", " ", "\n", ",", "'", '"'),
        *(":", "@", "/"),
    ]
)
_leaky = st.lists(_fragments, max_size=6).map("".join)
_leaky_value = st.recursive(
    _leaky | st.integers(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_leaky, inner, max_size=3),
    max_leaves=8,
)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_leaky, _leaky_value, max_size=4))
def test_a_document_is_masked_exactly_as_string_by_string(document: dict[str, Any]) -> None:
    quick, walked = Redactor(["hunter2-live"]), Redactor(["hunter2-live"])
    assert quick(document) == walked._walk(document)
    assert quick.masked == walked.masked


# ----------------------------------------------------------------------------- scale


class GeneratedStore:
    """A read-only store of ``n`` documents of about 2 KB, made when read: nothing held."""

    capabilities = frozenset({Capability.PERSISTENT})

    def __init__(self, n: int) -> None:
        self.n = n

    def get(self, key: str) -> dict[str, Any] | None:
        if key.startswith("_qf/"):
            return {"versions": {"questfoundry": 1}} if key == "_qf/schema_version" else None
        return {"key": key, "text": key * (2000 // len(key))}

    def list_keys(self, prefix: str = "") -> list[str]:
        return [f"book/sections/{i:06d}" for i in range(self.n)]


def _peak_export(tmp_path: Path, n: int) -> tuple[int, int]:
    path = tmp_path / f"{n}.json"
    tracemalloc.start()
    try:
        export_state(GeneratedStore(n), path)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, path.stat().st_size


@pytest.mark.slow
def test_exporting_ten_times_the_documents_needs_no_more_than_the_key_list(
    tmp_path: Path,
) -> None:
    small, small_size = _peak_export(tmp_path, 1_000)
    large, large_size = _peak_export(tmp_path, 10_000)
    assert large_size > 9 * small_size > 15_000_000  # about 20 MB of documents written
    # 9,000 more keys of ~70 bytes each, and nothing for their documents
    assert large - small < 9_000 * 200
