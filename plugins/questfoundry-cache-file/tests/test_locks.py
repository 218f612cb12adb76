"""Flight locks of the file cache: one holder per key across processes, released by its owner or
its death."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

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
        time.sleep(0.1)  # expiries are on the wall clock
        assert cache.lock("k", 60)
    finally:
        cache.close()


def _take(directory: str, queue: multiprocessing.Queue[bool], done: Any) -> None:
    cache = FileCache(directory, MB)
    queue.put(bool(cache.lock("shared", 60)))
    done.wait(20)  # every worker holds on until all have tried
    cache.close()


def test_processes_racing_for_a_key_get_one_lock(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[bool] = context.Queue()
    done = context.Event()
    workers = [context.Process(target=_take, args=(str(tmp_path), queue, done)) for _ in range(6)]
    for worker in workers:
        worker.start()
    taken = [queue.get(timeout=20) for _ in workers]
    done.set()
    for worker in workers:
        worker.join(10)
    assert taken.count(True) == 1


def _hold_until_killed(directory: str, queue: multiprocessing.Queue[bool]) -> None:
    cache = FileCache(directory, MB)
    queue.put(bool(cache.lock("shared", 3600)))
    time.sleep(600)


def test_a_lock_is_free_the_moment_its_holder_is_killed(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    queue: multiprocessing.Queue[bool] = context.Queue()
    holder = context.Process(target=_hold_until_killed, args=(str(tmp_path), queue))
    holder.start()
    assert queue.get(timeout=20)
    cache = FileCache(tmp_path, MB)
    try:
        assert cache.lock("shared", 60) is None
        holder.kill()
        holder.join(10)

        assert cache.lock("shared", 60)  # at once, not after the holder's hour
    finally:
        cache.close()


def test_the_locks_of_every_key_are_one_file(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, MB)
    try:
        tokens = {f"key-{number}": cache.lock(f"key-{number}", 60) for number in range(200)}
        assert all(tokens.values())
        for key, token in tokens.items():
            cache.unlock(key, str(token))
        assert [path.name for path in (tmp_path / "locks").iterdir()] == ["flights"]
    finally:
        cache.close()
