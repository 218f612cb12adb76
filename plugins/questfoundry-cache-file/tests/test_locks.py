"""Flight locks of the file cache: one holder per key across processes, released by its owner."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

from questfoundry_cache_file.cache import FileCache

MB = 1024 * 1024


def test_one_holder_at_a_time_and_only_the_holder_releases(tmp_path: Path) -> None:
    first, second = FileCache(tmp_path, MB), FileCache(tmp_path, MB)
    try:
        token = first.lock("k", 60)
        assert token
        assert second.lock("k", 60) is None
        second.unlock("k", "not-the-token")
        assert second.lock("k", 60) is None  # a wrong token released nothing
        first.unlock("k", token)
        assert second.lock("k", 60)
    finally:
        first.close()
        second.close()


def test_a_lock_expires_when_its_holder_never_releases_it(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, MB)
    try:
        assert cache.lock("k", 0.05)
        time.sleep(0.1)  # diskcache expires on the wall clock
        assert cache.lock("k", 60)
    finally:
        cache.close()


def _take(directory: str, queue: multiprocessing.Queue[bool]) -> None:
    cache = FileCache(directory, MB)
    queue.put(bool(cache.lock("shared", 60)))
    cache.close()


def test_processes_racing_for_a_key_get_one_lock(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[bool] = context.Queue()
    workers = [context.Process(target=_take, args=(str(tmp_path), queue)) for _ in range(6)]
    for worker in workers:
        worker.start()
    taken = [queue.get(timeout=20) for _ in workers]
    for worker in workers:
        worker.join(10)
    assert taken.count(True) == 1


def test_locks_that_cannot_be_opened_say_go_ahead(tmp_path: Path) -> None:
    (tmp_path / "locks").write_text("a file where the locks folder should be")
    cache = FileCache(tmp_path, MB)
    try:
        assert cache.lock("k", 60) == ""
        cache.unlock("k", "anything")  # never raises
    finally:
        cache.close()


def test_locks_live_beside_the_entries_without_counting_as_entries(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, MB)
    try:
        cache.set("entry", b"value")
        assert cache.lock("entry", 60)
        assert cache.stats().entries == 1
        assert cache.clear() == 1
        assert cache.lock("entry", 60) is None  # clearing answers does not steal a flight
    finally:
        cache.close()
