"""The ``file`` cache backend: conformance, no pickles, damaged entries, processes, size, prune."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import pickle
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from questfoundry_cache_file import plugin as file_plugin
from questfoundry_cache_file.cache import (
    COUNTS_SECONDS,
    INLINE_LIMIT,
    ORPHAN_GRACE_SECONDS,
    REOPEN_SECONDS,
    FileCache,
)
from questfoundry_cache_file.disk import SafeDisk, UnreadableEntry
from questfoundry_cache_file.plugin import make_file_cache

from questfoundry.kit import (
    BackendContext,
    BackendUnavailableError,
    CacheBackend,
    ConfigError,
    Request,
)
from questfoundry.testing.app import Config, Gateway, get_plugin_manager, open_gateway
from questfoundry.testing.cache_contract import (
    SMALL_LIMIT,
    AdvanceTime,
    CacheBackendContract,
    Reopen,
)
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

LOGGER = "questfoundry.cache.file"
MODE_BINARY, MODE_PICKLE = 2, 4


def _db(cache: FileCache) -> closing[sqlite3.Connection]:
    """A connection of the test's own to the cache's database, as a tamperer would open it."""
    return closing(sqlite3.connect(cache.directory / "cache.db", isolation_level=None))


def _sql(cache: FileCache, statement: str, *args: Any) -> list[tuple[Any, ...]]:
    with _db(cache) as db:
        return db.execute(statement, args).fetchall()


def _value_file(cache: FileCache, key: str) -> Path:
    ((name,),) = _sql(cache, "SELECT filename FROM Cache WHERE key = ?", key)
    return cache.directory / str(name)


class TestFileCache(CacheBackendContract):
    @pytest.fixture
    def cache(self, backend_context: BackendContext) -> Iterator[CacheBackend]:
        backend = make_file_cache({}, backend_context)
        yield backend
        backend.close()

    @pytest.fixture
    def advance_time(self, cache: FileCache) -> AdvanceTime:
        """diskcache measures TTLs with ``time.time()``: age the entries instead of the clock."""

        def advance(seconds: float) -> None:
            _sql(
                cache,
                "UPDATE Cache SET expire_time = expire_time - ? WHERE expire_time IS NOT NULL",
                seconds,
            )

        return advance

    @pytest.fixture
    def small_cache(self, backend_context: BackendContext) -> Iterator[CacheBackend]:
        backend = make_file_cache({"max_cache_size_mb": 1}, backend_context)
        assert backend.size_limit == SMALL_LIMIT
        yield backend
        backend.close()

    @pytest.fixture
    def reopen(self, backend_context: BackendContext) -> Iterator[Reopen]:
        opened: list[CacheBackend] = []

        def again(cache: CacheBackend) -> CacheBackend:
            cache.close()
            opened.append(make_file_cache({}, backend_context))
            return opened[-1]

        yield again
        for backend in opened:
            backend.close()

    @pytest.fixture
    def unavailable_cache(self, backend_context: BackendContext) -> CacheBackend:
        _make_dir_a_file(backend_context.project_dir / "cache")
        return make_file_cache({}, backend_context)


@pytest.fixture
def cache(backend_context: BackendContext) -> Iterator[FileCache]:
    backend = make_file_cache({}, backend_context)
    yield backend
    backend.close()


# ----------------------------------------------------------------------------- plugin and settings


def test_installed_entry_point_registers_the_file_backend(
    backend_context: BackendContext,
) -> None:
    manager = get_plugin_manager(env={"QUESTFOUNDRY_LOAD_PLUGINS": "questfoundry-cache-file"})
    registration = manager.get("cache backend", "file")
    assert registration.distribution == "questfoundry-cache-file"
    cache = manager.create("cache backend", "file", {}, backend_context)
    assert isinstance(cache, FileCache)
    assert cache.directory == backend_context.project_dir / "cache"
    cache.close()


def test_cache_dir_is_relative_to_the_project_root_or_absolute(
    backend_context: BackendContext, tmp_path: Path
) -> None:
    relative = make_file_cache({"cache_dir": "var/replies"}, backend_context)
    assert relative.directory == backend_context.project_dir.parent / "var" / "replies"
    absolute = make_file_cache({"cache_dir": str(tmp_path / "elsewhere")}, backend_context)
    assert absolute.directory == tmp_path / "elsewhere"
    assert (tmp_path / "elsewhere" / "cache.db").is_file()


def test_max_cache_size_mb_becomes_the_size_limit(backend_context: BackendContext) -> None:
    assert make_file_cache({}, backend_context).size_limit == 1024 * 1024 * 1024
    assert make_file_cache({"max_cache_size_mb": 0.5}, backend_context).size_limit == 512 * 1024


@pytest.mark.parametrize("size", [0, -1, "big", True, None])
def test_a_bad_max_cache_size_mb_is_a_config_error(
    backend_context: BackendContext, size: object
) -> None:
    with pytest.raises(ConfigError, match=r"caching\.max_cache_size_mb"):
        make_file_cache({"max_cache_size_mb": size}, backend_context)


# ----------------------------------------------------------------------------- persistence, sharing


def test_entries_survive_closing_and_reopening(cache: FileCache) -> None:
    cache.set("k", b"v")
    cache.close()
    reopened = FileCache(cache.directory, size_limit=cache.size_limit)
    assert reopened.get("k") == b"v"


def test_two_caches_on_one_directory_see_each_others_entries(cache: FileCache) -> None:
    other = FileCache(cache.directory, size_limit=cache.size_limit)
    other.set("from-other", b"1")
    cache.set("from-first", b"2")
    assert cache.get("from-other") == b"1"
    assert other.get("from-first") == b"2"
    assert other.stats().entries == cache.stats().entries == 2
    assert other.delete("from-first") is True
    assert cache.get("from-first") is None


def test_a_hit_writes_nothing_to_the_database(cache: FileCache) -> None:
    cache.set("k", b"v" * 1000)
    with _db(cache) as observer:
        before = observer.execute("PRAGMA data_version").fetchone()
        for _ in range(20):
            assert cache.get("k") == b"v" * 1000
        cache.get("missing")
        assert observer.execute("PRAGMA data_version").fetchone() == before
    counts = "SELECT value FROM Settings WHERE key IN ('hits', 'misses') ORDER BY key"
    assert _sql(cache, counts) == [(0,), (0,)]  # kept in the process until it writes anyway
    assert (cache.stats().hits, cache.stats().misses) == (20, 1)
    assert _sql(cache, counts) == [(20,), (1,)]


def test_small_values_stay_in_the_database_and_large_ones_get_a_file(cache: FileCache) -> None:
    cache.set("small", b"s" * (INLINE_LIMIT - 1))
    cache.set("large", b"l" * INLINE_LIMIT)
    rows = dict(_sql(cache, "SELECT key, filename FROM Cache"))
    assert rows["small"] is None
    assert _value_file(cache, "large").read_bytes() == b"l" * INLINE_LIMIT


def test_overwriting_a_file_value_removes_the_old_file(cache: FileCache) -> None:
    cache.set("k", b"1" * INLINE_LIMIT)
    old = _value_file(cache, "k")
    cache.set("k", b"2" * INLINE_LIMIT)
    assert not old.exists()
    assert cache.get("k") == b"2" * INLINE_LIMIT


# ----------------------------------------------------------------------------- never pickled


class _Bomb:
    """Unpickling this creates ``marker``: proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return (Path.touch, (self.marker,))


def test_values_that_are_not_bytes_are_refused_never_pickled(cache: FileCache) -> None:
    for value in ("text", 42, {"a": 1}, None):
        with pytest.raises(TypeError, match="bytes"):
            cache.set("k", value)  # type: ignore[arg-type]
    disk = SafeDisk(str(cache.directory))
    with pytest.raises(TypeError, match="bytes"):
        disk.store({"a": 1}, read=False)
    with pytest.raises(TypeError, match="text or bytes keys"):
        disk.put(("tuple", "key"))
    assert _sql(cache, "SELECT count(*) FROM Cache") == [(0,)]


def test_bytearray_and_memoryview_values_are_stored_as_bytes(cache: FileCache) -> None:
    cache.set("a", bytearray(b"array"))
    cache.set("m", memoryview(b"view"))
    assert (cache.get("a"), cache.get("m")) == (b"array", b"view")


def test_a_row_crafted_in_pickle_mode_runs_nothing_and_reads_as_a_miss(
    cache: FileCache, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps(_Bomb(marker))
    assert not marker.exists()
    cache.set("inline", b"honest")
    cache.set("in-file", b"honest" * INLINE_LIMIT)
    bomb_file = _value_file(cache, "in-file")
    bomb_file.write_bytes(payload)
    _sql(cache, "UPDATE Cache SET mode = ?, value = ? WHERE key = 'inline'", MODE_PICKLE, payload)
    _sql(cache, "UPDATE Cache SET mode = ? WHERE key = 'in-file'", MODE_PICKLE)

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.get("inline") is None
        assert cache.get("in-file") is None
        assert cache.get("inline") is None
    assert not marker.exists()
    assert [r.getMessage().split(" is unreadable")[0][-10:] for r in caplog.records] == [
        "try inline",
        "ry in-file",
    ]
    assert cache.stats().misses == 3


def test_a_pickled_key_is_refused_unread(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    disk = SafeDisk(str(tmp_path))
    with pytest.raises(UnreadableEntry, match="pickled key"):
        disk.get(pickle.dumps(_Bomb(marker)), raw=False)
    assert not marker.exists()


def test_a_row_crafted_with_a_pickled_key_is_never_matched(cache: FileCache) -> None:
    pickled_key = pickle.dumps("k")
    _sql(
        cache,
        "INSERT INTO Cache (key, raw, store_time, access_time, mode, value)"
        " VALUES (?, 0, 0, 0, 1, ?)",
        pickled_key,
        b"planted",
    )
    assert cache.get("k") is None


# ----------------------------------------------------------------------------- damaged entries


def _damage_file(path: Path, how: str) -> None:
    if how == "deleted":
        path.unlink()
    elif how == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:  # altered: same length, different bytes
        data = bytearray(path.read_bytes())
        data[1000] ^= 0xFF
        path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["deleted", "truncated", "altered"])
def test_a_damaged_value_file_is_a_miss_logged_once(
    cache: FileCache, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache.set("k", os.urandom(INLINE_LIMIT * 2))
    _damage_file(_value_file(cache, "k"), how)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.get("k") is None
        assert cache.get("k") is None
    assert len(caplog.records) == 1
    assert "entry k is unreadable" in caplog.records[0].getMessage()
    cache.set("k", b"fresh")
    assert cache.get("k") == b"fresh"


@pytest.mark.parametrize(
    ("mode", "filename", "value"),
    [
        (1, None, "text, not bytes"),
        (1, None, 12345),
        (1, None, None),
        (3, None, b"text mode"),
        (99, None, b"unknown mode"),
        (MODE_BINARY, None, None),
        (MODE_BINARY, "../../outside.val", None),
        (MODE_BINARY, "ab/cd/not-a-name-it-writes.val", None),
    ],
    ids=["str", "int", "null", "text-mode", "mode-99", "no-file", "outside", "foreign-name"],
)
def test_a_garbage_row_is_a_miss(
    cache: FileCache, tmp_path: Path, mode: int, filename: str | None, value: object
) -> None:
    (cache.directory.parent / "outside.val").write_bytes(b"secret")
    cache.set("k", b"honest")
    _sql(cache, "UPDATE Cache SET mode = ?, filename = ?, value = ?", mode, filename, value)
    assert cache.get("k") is None


def test_a_row_pointing_at_a_file_outside_the_cache_never_reads_it(cache: FileCache) -> None:
    name = f"../{'0' * 28}-{len(b'top secret'):x}-{zlib.crc32(b'top secret'):08x}.val"
    (cache.directory.parent / name[3:]).write_bytes(b"top secret")  # right length and CRC
    cache.set("k", b"honest")
    _sql(cache, "UPDATE Cache SET mode = ?, filename = ?, value = NULL", MODE_BINARY, name)
    assert cache.get("k") is None


# ----------------------------------------------------------------------------- unavailable


def _make_dir_a_file(directory: Path) -> None:
    directory.write_text("not a folder")


def _fill_db_with_garbage(directory: Path) -> None:
    directory.mkdir()
    (directory / "cache.db").write_bytes(os.urandom(64 * 1024))


BROKEN: dict[str, Callable[[Path], None]] = {
    "cache_dir-is-a-file": _make_dir_a_file,
    "random-bytes-db": _fill_db_with_garbage,
}
REASONS = {
    "cache_dir-is-a-file": "it is a file, not a folder",
    "random-bytes-db": "file is not a database",
}


@pytest.mark.parametrize("cause", BROKEN)
def test_a_cache_that_cannot_be_opened_misses_stores_nothing_and_warns_once(
    backend_context: BackendContext, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    directory = backend_context.project_dir / "cache"
    BROKEN[cause](directory)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        cache = make_file_cache({}, backend_context)
        for _ in range(3):
            assert cache.get("k") is None
            cache.set("k", b"v")
    (record,) = caplog.records
    message = record.getMessage()
    assert message == (
        f"file cache {directory} cannot be opened: {REASONS[cause]};"
        " the cache is bypassed until it works again"
    )
    for operation in (cache.stats, cache.clear, cache.prune, lambda: cache.delete("k")):
        with pytest.raises(BackendUnavailableError, match=f"^file cache {directory} cannot be"):
            operation()


def test_a_cache_that_could_not_be_opened_is_tried_again_after_the_delay(
    backend_context: BackendContext, fake_clock: FakeClock
) -> None:
    directory = backend_context.project_dir / "cache"
    _make_dir_a_file(directory)
    cache = make_file_cache({}, backend_context)
    directory.unlink()  # the user fixes it
    fake_clock.advance(REOPEN_SECONDS - 1)
    cache.set("k", b"v")
    assert cache.get("k") is None  # not tried again yet: a broken cache costs nothing per call
    fake_clock.advance(1)
    cache.set("k", b"v")
    assert cache.get("k") == b"v"
    assert cache.stats().entries == 1


def test_a_write_blocked_by_another_process_is_skipped_with_one_warning(
    cache: FileCache, caplog: pytest.LogCaptureFixture
) -> None:
    impatient = FileCache(cache.directory, cache.size_limit, lock_timeout=0.05)
    cache.set("k", b"v")
    with _db(cache) as holder, caplog.at_level(logging.WARNING, logger=LOGGER):
        holder.execute("BEGIN IMMEDIATE")
        impatient.set("k", b"w")
        impatient.set("k", b"w")
        with pytest.raises(BackendUnavailableError, match="cannot delete"):
            impatient.delete("k")
        assert impatient.get("k") == b"v"  # reads never wait for writers
        holder.execute("ROLLBACK")
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records] == [
        "another process held the cache locked for more than 0.05s;"
        " the cache is bypassed until it works again"
    ]
    impatient.set("k", b"w")
    assert cache.get("k") == b"w"


def test_a_database_broken_after_opening_is_bypassed_and_maintenance_says_why(
    cache: FileCache, caplog: pytest.LogCaptureFixture
) -> None:
    cache.set("k", b"v")
    _sql(cache, "DROP TABLE Cache")
    _sql(cache, "DROP TABLE Settings")
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.get("k") is None
        cache.set("k", b"v")
        assert cache.get("k") is None
    assert [r.getMessage() for r in caplog.records] == [
        f"file cache {cache.directory} cannot be read: no such table: Cache;"
        " the cache is bypassed until it works again"
    ]
    for operation in (cache.clear, cache.prune, cache.stats):
        with pytest.raises(BackendUnavailableError, match=r"^file cache .*: no such table: \w+$"):
            operation()


def test_safe_disk_keeps_text_and_bytes_keys_as_they_are(tmp_path: Path) -> None:
    disk = SafeDisk(str(tmp_path))
    for key in ("text key", b"\xffbytes key"):
        stored, raw = disk.put(key)
        assert raw is True
        column = bytes(stored) if isinstance(stored, memoryview) else stored
        assert disk.get(column, raw) == key
    with pytest.raises(UnreadableEntry, match="key of type int"):
        disk.get(7, True)


# ----------------------------------------------------------------------------- size and prune


def test_writing_past_the_size_limit_evicts_the_oldest_stored(
    backend_context: BackendContext,
) -> None:
    cache = make_file_cache({"max_cache_size_mb": 0.25}, backend_context)
    limit = 256 * 1024
    for index in range(60):
        size = INLINE_LIMIT + 1024 if index % 3 == 0 else 8 * 1024  # files and inline rows
        cache.set(f"k{index}", bytes([index]) * size)
    assert cache.stats().bytes <= limit * 1.25
    assert cache.get("k0") is None
    assert cache.get("k59") == bytes([59]) * (8 * 1024)
    assert cache.stats().entries < 60


def _orphan(directory: Path, age: float) -> Path:
    path = directory / "ab" / "cd" / f"{os.urandom(14).hex()}-4-00000000.val"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"left")
    stamp = time.time() - age
    os.utime(path, (stamp, stamp))
    return path


def test_prune_sweeps_old_orphan_value_files_only(cache: FileCache) -> None:
    cache.set("big", b"b" * INLINE_LIMIT)
    referenced = _value_file(cache, "big")
    old_stamp = time.time() - 2 * ORPHAN_GRACE_SECONDS
    os.utime(referenced, (old_stamp, old_stamp))
    old = _orphan(cache.directory, 2 * ORPHAN_GRACE_SECONDS)
    young = _orphan(cache.directory, 1)  # may be a write still waiting for the lock
    assert cache.prune() == 1
    assert not old.exists()
    assert young.exists()
    assert cache.get("big") == b"b" * INLINE_LIMIT


def test_prune_counts_expired_entries_and_orphans_together(cache: FileCache) -> None:
    cache.set("short", b"v", ttl=0.001)
    _orphan(cache.directory, 2 * ORPHAN_GRACE_SECONDS)
    _sql(cache, "UPDATE Cache SET expire_time = expire_time - 10")
    assert cache.prune() == 2
    assert not (cache.directory / "ab").exists()  # emptied subfolders go too


# ----------------------------------------------------------------------------- several processes


def _stamped(worker: int, index: int) -> bytes:
    size = INLINE_LIMIT + 512 if index % 5 == 0 else 700
    header = f"{worker}:{index}|".encode()
    return (header * (size // len(header) + 1))[:size]


def _check_whole(value: bytes | None) -> None:
    if value is not None:
        worker, index = map(int, value.split(b"|", 1)[0].split(b":"))
        assert value == _stamped(worker, index)


def _process_worker(directory: str, worker: int, workers: int, rounds: int, start: Any) -> None:
    cache = FileCache(directory, size_limit=2**30)
    start.wait(30)  # every process starts writing at once, or they would barely overlap
    for index in range(rounds):
        cache.set(f"w{worker}-{index}", _stamped(worker, index))
        cache.set("shared", _stamped(worker, index))
        _check_whole(cache.get("shared"))
        _check_whole(cache.get(f"w{(worker + 1) % workers}-{index}"))
    cache.close()


@pytest.mark.slow
def test_processes_sharing_one_directory_lose_nothing_and_tear_nothing(cache: FileCache) -> None:
    workers, rounds = 3, 150
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(workers)
    processes = [
        context.Process(
            target=_process_worker, args=(str(cache.directory), w, workers, rounds, start)
        )
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0] * workers
    for worker in range(workers):
        for index in range(rounds):
            assert cache.get(f"w{worker}-{index}") == _stamped(worker, index)
    assert cache.get("shared") in {_stamped(w, rounds - 1) for w in range(workers)}
    assert cache.stats().entries == workers * rounds + 1


# ----------------------------------------------------------------------------- tampered file names


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file outside the cache, in a folder of its own, that no cache operation may delete."""
    path = tmp_path / "victim" / "notes.txt"
    path.parent.mkdir()
    path.write_text("my notes")
    return path


def _tamper(cache: FileCache, key: str, how: str, victim: Path) -> None:
    """Point ``key``'s row at ``victim`` the way ``how`` says (relative, absolute, via a link)."""
    cache.set(key, b"v" * INLINE_LIMIT)
    if how == "relative":
        name = os.path.relpath(victim, cache.directory)
    elif how == "absolute":
        name = str(victim)
    else:  # a name of the right shape whose first subfolder is a link out of the cache
        honest = _value_file(cache, key)
        name = str(honest.relative_to(cache.directory))
        planted = victim.parent / name[3:]
        planted.parent.mkdir(parents=True)
        planted.write_bytes(b"v" * INLINE_LIMIT)  # what the row's stamp promises
        shutil.rmtree(cache.directory / name[:2])
        (cache.directory / name[:2]).symlink_to(victim.parent, target_is_directory=True)
        victim = planted
    _sql(cache, "UPDATE Cache SET filename = ? WHERE key = ?", name, key)
    assert cache.get(key) is None  # never read either


def _expire(cache: FileCache, key: str) -> None:
    _sql(cache, "UPDATE Cache SET expire_time = 1 WHERE key = ?", key)


def _overwrite(cache: FileCache) -> None:
    cache.set("tampered", b"new value")


def _delete(cache: FileCache) -> None:
    assert cache.delete("tampered") is True


def _expire_then_prune(cache: FileCache) -> None:
    _expire(cache, "tampered")
    assert cache.prune() == 1


def _expire_then_write(cache: FileCache) -> None:
    _expire(cache, "tampered")
    cache.set("other", b"v")  # every write culls expired rows


def _evict(cache: FileCache) -> None:
    # opened with a one-byte limit, the next write evicts the oldest stored rows, tampered first
    reopened = FileCache(cache.directory, size_limit=1)
    reopened.set("other", b"v")
    reopened.close()


def _clear(cache: FileCache) -> None:
    assert cache.clear() == 1


TAMPERED_OPERATIONS: dict[str, Callable[[FileCache], None]] = {
    "overwrite": _overwrite,
    "delete": _delete,
    "expire-prune": _expire_then_prune,
    "expire-write": _expire_then_write,
    "evict": _evict,
    "clear": _clear,
}


@pytest.mark.parametrize("operation", TAMPERED_OPERATIONS)
@pytest.mark.parametrize("how", ["relative", "absolute", "linked-folder"])
def test_a_row_naming_a_file_outside_the_cache_is_dropped_without_touching_the_file(
    cache: FileCache, victim: Path, how: str, operation: str, caplog: pytest.LogCaptureFixture
) -> None:
    _tamper(cache, "tampered", how, victim)
    before = sorted(victim.parent.rglob("*"))
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        TAMPERED_OPERATIONS[operation](cache)
    assert sorted(victim.parent.rglob("*")) == before
    assert victim.read_text() == "my notes"
    remaining = _sql(cache, "SELECT filename FROM Cache WHERE key = 'tampered'")
    assert remaining in ([], [(None,)])  # the row is gone, or holds the new inline value
    assert any("left untouched" in r.getMessage() for r in caplog.records)


def test_prune_never_sweeps_through_a_linked_subfolder(cache: FileCache, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    old = _orphan(outside, 2 * ORPHAN_GRACE_SECONDS)  # outside/ab/cd/<name>.val, old enough
    (cache.directory / "ef").symlink_to(outside / "ab", target_is_directory=True)
    assert cache.prune() == 0
    assert old.read_bytes() == b"left"


def test_a_value_file_replaced_by_a_link_is_not_followed(cache: FileCache, victim: Path) -> None:
    cache.set("k", b"v" * INLINE_LIMIT)
    path = _value_file(cache, "k")
    victim.write_bytes(path.read_bytes())  # same length and CRC: only the link gives it away
    path.unlink()
    path.symlink_to(victim)
    assert cache.get("k") is None
    cache.set("k", b"overwritten")  # removes the link itself, not its target
    assert not path.is_symlink()
    assert victim.read_bytes() == b"v" * INLINE_LIMIT


# ----------------------------------------------------------------------------- persistent counts


def test_counts_reach_the_database_with_a_store_every_few_seconds(
    cache: FileCache, fake_clock: FakeClock
) -> None:
    cache.set("k", b"v")
    cache.get("k")
    cache.get("missing")
    other = FileCache(cache.directory, cache.size_limit)
    cache.set("k2", b"v")  # a moment after the last store that counted: the counts wait
    assert (other.stats().hits, other.stats().misses) == (0, 0)
    fake_clock.advance(COUNTS_SECONDS)
    cache.set("k3", b"v")
    assert (other.stats().hits, other.stats().misses) == (1, 1)
    other.close()


def test_counts_of_every_process_sharing_the_cache_add_up(cache: FileCache) -> None:
    other = FileCache(cache.directory, cache.size_limit)
    cache.set("k", b"v")
    for _ in range(3):
        cache.get("k")
        other.get("k")
    other.get("missing")
    other.close()
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.persistent_counts) == (6, 1, True)


_COUNTING_CHILD = """
import sys
from questfoundry_cache_file.cache import FileCache
cache = FileCache(sys.argv[1], size_limit=2**30)
assert cache.get("k") == b"v" and cache.get("k") == b"v" and cache.get("missing") is None
cache.close()
"""


@pytest.mark.slow
def test_hits_and_misses_outlive_the_process_that_counted_them(cache: FileCache) -> None:
    cache.set("k", b"v")
    cache.close()
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", _COUNTING_CHILD, str(cache.directory)], check=True, timeout=60
        )
    later = FileCache(cache.directory, cache.size_limit)
    assert (later.stats().hits, later.stats().misses) == (4, 2)
    later.close()


# ----------------------------------------------------------------------------- read-only folder


_READ_ONLY_CHILD = """
import json, logging, sys
from questfoundry_cache_file.cache import FileCache
logging.basicConfig(level=logging.WARNING, format="%(message)s", stream=sys.stdout)
cache = FileCache(sys.argv[1], size_limit=2**30)
got = [cache.get(key) for key in ("small", "large", "missing")]
cache.set("new", b"reply")
cache.set("newer", b"reply")
stats = cache.stats()
print(json.dumps({
    "got": [None if v is None else len(v) for v in got],
    "new": cache.get("new"),
    "stats": [stats.entries, stats.hits, stats.misses],
}))
"""


def _unprivileged(command: list[str]) -> list[str]:
    """``command`` run so that file permissions apply to it, even when the tests run as root."""
    if os.name != "posix":
        pytest.skip("folder permissions are POSIX modes here")
    if os.geteuid() != 0:
        return command
    capsh = shutil.which("capsh")
    if capsh is None:
        pytest.skip("running as root without capsh: permissions cannot be enforced")
    drop = "cap_dac_override,cap_dac_read_search,cap_fowner"
    return [capsh, f"--drop={drop}", "--", "-c", " ".join(map(shlex.quote, command))]


@pytest.mark.slow
def test_a_read_only_cache_folder_serves_its_hits_and_warns_once_about_writes(
    cache: FileCache,
) -> None:
    cache.set("small", b"s" * 10)
    cache.set("large", b"l" * INLINE_LIMIT)
    cache.close()
    modes = {path: path.stat().st_mode for path in [cache.directory, *cache.directory.rglob("*")]}
    for path, mode in modes.items():
        path.chmod(mode & ~0o222)
    try:
        command = [sys.executable, "-c", _READ_ONLY_CHILD, str(cache.directory)]
        result = subprocess.run(
            _unprivileged(command), capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        for path, mode in modes.items():
            path.chmod(mode)
    assert result.returncode == 0, result.stderr
    *warnings, report = result.stdout.strip().splitlines()
    assert warnings == [
        f"file cache {cache.directory} cannot be opened: attempt to write a readonly database;"
        " the cache is bypassed until it works again"
    ]
    assert json.loads(report) == {
        "got": [10, INLINE_LIMIT, None],
        "new": None,
        "stats": [2, 2, 1],
    }


# ----------------------------------------------------------------------------- through the gateway


PRICED = {"cost_per_input_token": 0.001, "cost_per_output_token": 0.002}


def _gateway(project_dir: Path, provider: ScriptedProvider) -> Gateway:
    config = Config(
        data={
            "providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}},
            "caching": {"backend": "file"},
            "rate_limiting": {"providers": {"scripted": PRICED}},
        },
        path=None,
        project_dir=project_dir,
        secret_paths=frozenset(),
    )
    manager = get_plugin_manager(
        entry_points=False,
        plugins=[scripted_plugin(provider), ("questfoundry-cache-file", file_plugin)],
    )
    return open_gateway(config, manager)


@pytest.mark.parametrize("cause", BROKEN)
def test_calls_succeed_through_a_broken_file_cache_with_one_warning(
    backend_context: BackendContext, cause: str, caplog: pytest.LogCaptureFixture
) -> None:
    BROKEN[cause](backend_context.project_dir / "cache")
    provider = ScriptedProvider()
    request = Request(messages=[{"role": "user", "content": "hello"}])
    with caplog.at_level(logging.WARNING), _gateway(backend_context.project_dir, provider) as gw:
        assert gw.generate(request).text == "echo: hello"
        assert gw.generate(request).text == "echo: hello"
    assert provider.calls == 2
    assert [r.name for r in caplog.records if r.levelno >= logging.WARNING] == [LOGGER]
