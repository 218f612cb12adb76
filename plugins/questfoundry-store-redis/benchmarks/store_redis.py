# ruff: noqa: T201  (a benchmark prints its figures)
"""Redis state store benchmark: call latency, time to a clear error in an outage, contended updates.

    python plugins/questfoundry-store-redis/benchmarks/store_redis.py [--calls 500]

Everything runs against a private ``redis-server`` this script starts on a free port (and stops),
with the store's default settings (timeouts 0.1 s):

- ``get``, ``set`` and ``update`` of a ~1 KB document with Redis up (median and p99);
- how long each kind of call takes to raise its ``StateError`` with Redis stopped and with Redis
  frozen (``SIGSTOP``): the target is well under a second (the timeouts, once, no retries);
- 8 processes making 200 ``update`` increments each of one counter: wall time, tries per
  increment, and the final count (must be 1600).
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from questfoundry_store_redis.plugin import make_redis_store
from questfoundry_store_redis.store import RedisStore

from questfoundry.kit import BackendContext, StateError
from questfoundry.testing.redis import RedisServer

DOCUMENT = {"title": "The Lighthouse", "text": "Storm. " * 140}
PROCESSES, INCREMENTS = 8, 200


def open_store(url: str) -> RedisStore:
    return make_redis_store({"redis_url": url}, BackendContext(Path.cwd(), "bench"))


def calls(store: RedisStore) -> dict[str, Callable[[], Any]]:
    return {
        "get": lambda: store.get("doc"),
        "set": lambda: store.set("doc", DOCUMENT),
        "update": lambda: store.update("doc", lambda d: {**(d or {}), "n": 1}),
        "list_keys": store.list_keys,
    }


def latency(store: RedisStore, count: int) -> None:
    store.set("doc", DOCUMENT)
    for name, call in calls(store).items():
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            call()
            samples.append((time.perf_counter() - started) * 1e6)
        samples.sort()
        p99 = samples[int(len(samples) * 0.99) - 1]
        print(f"  {name:<10} median {statistics.median(samples):7.0f} µs   p99 {p99:7.0f} µs")


def time_to_error(store: RedisStore, label: str, repeats: int = 5) -> None:
    for name, call in calls(store).items():
        waits = []
        for _ in range(repeats):
            started = time.perf_counter()
            try:
                call()
            except StateError:
                waits.append(time.perf_counter() - started)
            else:
                raise SystemExit(f"{name} did not fail with Redis {label}")
        print(f"  {label:<8} {name:<10} StateError after {max(waits) * 1000:6.1f} ms (worst of 5)")


def _increment(url: str) -> int:
    store = open_store(url)
    tries = 0

    def change(document: dict[str, Any] | None) -> dict[str, Any]:
        nonlocal tries
        tries += 1
        return {"n": (document or {"n": 0})["n"] + 1}

    for _ in range(INCREMENTS):
        store.update("counter", change)
    store.close()
    return tries


def contended(url: str) -> None:
    store = open_store(url)
    store.delete("counter")
    context = multiprocessing.get_context("forkserver")
    with context.Pool(PROCESSES) as pool:
        pool.map(abs, range(PROCESSES))  # the workers are up before the clock starts
        started = time.perf_counter()
        tries = pool.map(_increment, [url] * PROCESSES)
        elapsed = time.perf_counter() - started
    total = PROCESSES * INCREMENTS
    print(
        f"  {PROCESSES} processes x {INCREMENTS} updates: {elapsed:.2f} s, "
        f"{sum(tries) / total:.2f} tries per increment, final count {store.get('counter')}"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        server = RedisServer(Path(folder))
        server.start()
        try:
            store = open_store(server.url)
            print("Redis up:")
            latency(store, args.calls)
            contended(server.url)
            print("Redis down:")
            server.freeze()
            time_to_error(store, "frozen")
            server.thaw()
            server.stop()
            time_to_error(store, "stopped")
            store.close()
        finally:
            server.stop()


if __name__ == "__main__":
    main()
