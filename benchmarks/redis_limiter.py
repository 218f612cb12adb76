"""Redis limiter benchmark: acquires per second from one and four processes, Redis round trips per
acquire, beside a raw redis-py ``GET`` measured in the same run.

    python benchmarks/redis_limiter.py [--quick]        (needs redis-server on PATH)

Everything runs against a private ``redis-server`` this script starts on a free port (and stops).
An acquire is what the gateway asks for every attempt: all four layers at once (requests and
tokens, global and per provider, fields of one hash), with limits so large that none refuses.

- one process: the median and p99 of an acquire, of a redis-py ``GET`` of a short value on a
  client with the same options, and of an ``EVALSHA`` of an empty script sent an acquire's keys
  and arguments (what any one-script acquire costs before its script does anything), taken in
  turns; the ratios of the medians to the ``GET`` (target: <= 1.3x);
- round trips per acquire, from ``INFO commandstats`` deltas: the commands the client sent
  (``EVALSHA``, and anything else not run inside the script). Target: exactly 1;
- four processes racing: acquires per second together, beside ``GET`` s per second together;
- the ``limits`` library (one storage call per limit), when it is installed.

:func:`run` returns the rows (dicts); run as a script it prints them as a table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from questfoundry_limiter_redis.connection import Script
from questfoundry_limiter_redis.plugin import make_redis_limiter

from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.records import Rate
from questfoundry.gateway.admission import admission
from questfoundry.testing.racing import READY, race
from questfoundry.testing.redis import RedisServer

sys.path.insert(0, str(Path(__file__).parent))
from rows import Row, interleaved, ratio_row, table, timed, timed_row

LAYERS = [
    Rate("global/requests", 1e12, 60),
    Rate("global/tokens", 1e15, 3600),
    Rate("provider:openai/requests", 1e12, 60),
    Rate("provider:openai/tokens", 1e15, 3600),
]
AMOUNTS = admission("openai", 350)
#: what the limiter's script runs inside Redis: not round trips
IN_SCRIPT = {"time", "hmget", "hset", "pttl", "pexpire"}
#: what the benchmark itself asks
OURS = {"info", "hello", "script|load", "set", "client|setinfo", "client|setname"}

_RACER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    sys.path.insert(0, sys.argv[1])
    import redis_limiter as bench
    url, kind, runs = sys.argv[2], sys.argv[3], int(sys.argv[4])
    operation, close = bench.operation(kind, url)
    operation()
    READY
    start = time.perf_counter()
    for _ in range(runs):
        operation()
    print(time.perf_counter() - start)
    close()
    """
).replace("READY", READY)


def operation(kind: str, url: str) -> tuple[Callable[[], Any], Callable[[], None]]:
    """One ``acquire`` (``kind`` "acquire"), one ``GET`` ("get"), or one ``EVALSHA`` of an empty
    script with an acquire's keys and arguments ("empty"), and how to close it."""
    context = BackendContext(Path(tempfile.gettempdir()), "bench")
    limiter = make_redis_limiter({"redis_url": url, "rates": LAYERS}, context)
    if kind == "acquire":
        return (lambda: limiter.acquire(AMOUNTS)), limiter.close
    if kind == "empty":
        empty = Script(limiter.client, "return '0'")
        args = limiter._arguments("acquire", AMOUNTS)
        return (lambda: empty([limiter._hash], args)), limiter.close
    client = limiter.client  # the limiter's own client: the same options
    client.set("bench:value", "1")
    return (lambda: client.get("bench:value")), limiter.close


def command_calls(url: str) -> dict[str, int]:
    from questfoundry.testing.redis import client

    conn = client(url)
    try:
        stats = conn.info("commandstats")
    finally:
        conn.close()
    return {name.removeprefix("cmdstat_"): int(entry["calls"]) for name, entry in stats.items()}


def round_trips(url: str, runs: int) -> Row:
    """Commands the client sent per acquire, counted by the server."""
    acquire, close = operation("acquire", url)
    acquire()  # loads the script
    before = command_calls(url)
    for _ in range(runs):
        acquire()
    after = command_calls(url)
    close()
    sent = {
        name: after[name] - before.get(name, 0)
        for name in after
        if name not in IN_SCRIPT | OURS and after[name] != before.get(name, 0)
    }
    return {
        "operation": "redis round trips per acquire (4 layers)",
        "round_trips": sum(sent.values()) / runs,
        "commands": ", ".join(f"{name} x{calls}" for name, calls in sorted(sent.items())),
        "target": 1,
    }


def racing(url: str, kind: str, processes: int, runs: int) -> Row:
    """``processes`` processes doing ``runs`` operations each at once: operations per second."""
    folder = str(Path(__file__).resolve().parent)
    seconds = [float(line) for line in race(_RACER, [folder, url, kind, str(runs)], processes)]
    name = "acquire" if kind == "acquire" else "redis-py GET"
    return {
        "operation": f"{name}, {processes} processes together",
        "per_second": processes * runs / max(seconds),
    }


def limits_rows(url: str, runs: int) -> list[Row]:
    """The ``limits`` library's moving window over the same four limits, when installed."""
    try:
        from limits import RateLimitItemPerHour, RateLimitItemPerMinute, storage, strategies
    except ImportError:
        return [{"operation": "limits library: not installed", "note": "pip install limits"}]
    backend = storage.RedisStorage(url)
    limiter = strategies.MovingWindowRateLimiter(backend)
    items = [RateLimitItemPerMinute(10**9), RateLimitItemPerHour(10**12)] * 2
    names = ["global/requests", "global/tokens", "openai/requests", "openai/tokens"]

    def hit() -> None:
        for item, name in zip(items, names, strict=True):
            limiter.hit(item, name)

    samples = timed(hit, runs, max(50, runs // 20))
    return [timed_row("limits library, 4 limits (one call each)", samples)]


def run(quick: bool = False) -> list[dict[str, object]]:
    """Every row of the benchmark, in one run against one private Redis server."""
    runs = 2_000 if quick else 20_000
    with tempfile.TemporaryDirectory() as name:
        server = RedisServer(Path(name))
        server.start()
        try:
            made = {kind: operation(kind, server.url) for kind in ("get", "empty", "acquire")}
            measured = interleaved({kind: call for kind, (call, _) in made.items()}, runs)
            for _, close in made.values():
                close()
            get_row = timed_row("redis-py GET (floor)", measured["get"])
            empty_row = timed_row(
                "EVALSHA of an empty script, an acquire's arguments", measured["empty"]
            )
            acquire_row = timed_row("acquire, 4 layers, 1 process", measured["acquire"])
            rows: list[Row] = [
                get_row,
                empty_row,
                acquire_row,
                ratio_row("empty script / GET, medians", empty_row, get_row),
                ratio_row("acquire / GET, medians", acquire_row, get_row),
                round_trips(server.url, min(runs, 1_000)),
                racing(server.url, "get", 4, runs),
                racing(server.url, "acquire", 4, runs),
            ]
            return rows + limits_rows(server.url, runs // 4)
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs")
    args = parser.parse_args()
    print(table(run(quick=args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
