"""File-cache scale benchmark: a hit through the plugin beside raw ``diskcache.Cache.get``.

    python benchmarks/cache_scale.py [--entries 1000 1000000] [--dir /tmp/qf-bench]

For each size a cache of that many ~1 KB entries is built once (kept in ``--dir`` and reused on
the next run: a million entries take a few minutes to write), then the same random keys are read
through :class:`questfoundry_cache_file.cache.FileCache` and through a plain ``diskcache.Cache``
opened on the same folder. What the plugin adds must not grow with the cache: the plugin/raw
ratio should be about the same at every size, while both grow as SQLite's index gets deeper.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import diskcache
from questfoundry_cache_file.cache import FileCache

VALUE = b'{"text": "' + b"The lantern room smelt of brass polish and old rain. " * 18 + b'"}'
BATCH = 10_000
SIZE_LIMIT = 2**40  # never evict: the benchmark measures lookups, not culling


def key(index: int) -> str:
    """A key shaped like the gateway's: namespace, version, SHA-256 hex."""
    return "bench:v1:" + hashlib.sha256(index.to_bytes(8, "big")).hexdigest()


def build(directory: Path, entries: int) -> FileCache:
    """The plugin's cache in ``directory`` holding ``entries`` entries (written once, then kept).

    Rows are written by plain diskcache in transactions of ``BATCH`` sets, which is many times
    faster than one transaction per set and stores small bytes exactly as the plugin does.
    """
    cache = FileCache(directory, size_limit=SIZE_LIMIT)  # creates the folder with its settings
    have = cache.stats().entries
    if have < entries:
        writer = diskcache.Cache(str(directory))
        for start in range(have, entries, BATCH):
            with writer.transact():
                for index in range(start, min(entries, start + BATCH)):
                    writer.set(key(index), VALUE)
        writer.close()
    return cache


def per_get(get: Callable[[str], object], keys: Sequence[str]) -> float:
    """Mean of one pass of ``get`` over ``keys``, in microseconds; every key must hit."""
    start = time.perf_counter_ns()
    for name in keys:
        if get(name) is None:
            raise AssertionError(f"{name} should be a hit")
    return (time.perf_counter_ns() - start) / 1000 / len(keys)


def best_of(
    gets: Sequence[Callable[[str], object]], keys: Sequence[str], repeats: int
) -> list[float]:
    """The best pass of each ``get``, passes taken in turn so both see the same machine."""
    best = [float("inf")] * len(gets)
    for _ in range(repeats):
        for index, get in enumerate(gets):
            best[index] = min(best[index], per_get(get, keys))
    return best


def cache_scale_rows(
    root: Path, sizes: Sequence[int] = (1_000, 1_000_000), lookups: int = 20_000, repeats: int = 5
) -> list[tuple[int, float, float]]:
    """``(entries, plugin µs/get, raw diskcache µs/get)`` for each size, on random hit keys."""
    rows = []
    for entries in sizes:
        directory = root / f"file-cache-{entries}"
        plugin = build(directory, entries)
        raw = diskcache.Cache(str(directory))  # reads the settings the plugin stored
        keys = [key(i) for i in random.Random(entries).choices(range(entries), k=lookups)]
        per_get(raw.get, keys)  # warm the page cache for both
        through_plugin, through_diskcache = best_of([plugin.get, raw.get], keys, repeats)
        rows.append((entries, through_plugin, through_diskcache))
        raw.close()
        plugin.close()
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/qf-bench"))
    parser.add_argument("--lookups", type=int, default=20_000)
    args = parser.parse_args(argv)
    rows = cache_scale_rows(args.dir, args.entries, args.lookups)
    print(f"{'entries':>10}  {'plugin µs':>10}  {'raw µs':>8}  {'plugin/raw':>10}")
    for entries, plugin, raw in rows:
        print(f"{entries:>10,}  {plugin:>10.2f}  {raw:>8.2f}  {plugin / raw:>10.2f}")
    if len(rows) > 1:
        growth = rows[-1][2] / rows[0][2], rows[-1][1] / rows[0][1]
        sizes = f"{rows[0][0]:,} to {rows[-1][0]:,}"
        print(f"growth {sizes}: raw x{growth[0]:.2f}, plugin x{growth[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
