"""Redis cache benchmark: a hit beside its floor, and what an outage adds to a call, in one run.

    python benchmarks/redis_cache.py [--quick]        (needs redis-server on PATH)

Everything runs against a private ``redis-server`` this script starts on a free port (and stops):

- a hit through the gateway (``gateway.generate``, and ``agenerate`` under asyncio) with the
  ``redis`` backend, beside its floor measured in the same run: the key (SHA-256 of the canonical
  request) + redis-py ``GET`` + ``json.loads`` of the same ~1 KB value. Target: <= 1.3x;
- the latency a call gets with Redis stopped, then frozen (``SIGSTOP``), beside the same calls
  with caching off, to an in-process scripted provider (so what differs is the cache). Every call
  from the moment Redis goes away is counted, the first ones (which pay the timeouts before the
  breaker opens) included; the full run paces its calls over more than two breaker cooldowns, so
  the probes each cooldown lets through are counted too. Target: p99 added ≤ 50 ms.

:func:`run` returns the rows (dicts); run as a script it prints them as a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import redis
from questfoundry_cache_redis import plugin as redis_plugin

from questfoundry.config import Config
from questfoundry.contracts.records import Request
from questfoundry.gateway import Gateway
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import open_gateway
from questfoundry.testing.redis import RedisServer
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

sys.path.insert(0, str(Path(__file__).parent))
import gateway as bench
from rows import Row, ratio_row, table, timed, timed_row

PRICED = {"cost_per_input_token": 0.001, "cost_per_output_token": 0.002}


async def async_samples(operation: Callable[[], Any], runs: int, warm: int) -> list[float]:
    for _ in range(warm):
        await operation()
    taken = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        start = clock()
        await operation()
        taken.append((clock() - start) / 1000)
    return taken


# ----------------------------------------------------------------------------- the hit


def hit_rows(tmp: Path, url: str, runs: int) -> list[Row]:
    """The floor and the gateway's hits (sync, async) on the same Redis and value, measured in
    alternating rounds so that whatever else the machine does weighs on all three alike.

    The ledger rows of the hits (written in the background; benchmarks/gateway.py prices them)
    are written between batches, so that no batch pays for another's.
    """
    raw = redis.Redis.from_url(url)
    raw.set("floor:" + bench.key(), bench.cached_value())

    def floor() -> None:
        json.loads(raw.get("floor:" + bench.key()))  # type: ignore[arg-type]

    caching = {"backend": "redis", "redis_url": url}
    gateway = open_gateway(bench.config(tmp, caching=caching), bench.MANAGER)
    hit = bench.gateway_hit(gateway)
    asked = bench.request()

    async def ahit() -> None:
        if not (await gateway.agenerate(asked)).cache_hit:
            raise AssertionError("the benchmark request should be a hit")

    rounds, warm = 20, 20
    per_round = max(1, runs // rounds)
    taken: dict[str, list[float]] = {"floor": [], "sync": [], "async": []}
    ledger = gateway.runtime.ledger
    for _ in range(rounds):
        taken["floor"] += timed(floor, per_round, warm)
        taken["sync"] += timed(hit, per_round, warm)
        ledger.flush()  # the hits' ledger rows, written now rather than during the next batch
        taken["async"] += asyncio.run(async_samples(ahit, per_round, warm))  # a loop per round
        ledger.flush()
    raw.close()
    gateway.close()
    rows = [
        timed_row("  floor: key + redis-py GET + json.loads", taken["floor"]),
        timed_row("hit via gateway, redis cache (sync)", taken["sync"]),
        timed_row("hit via gateway, redis cache (async)", taken["async"]),
    ]
    return [
        *rows,
        ratio_row("redis hit (sync) / floor", rows[1], rows[0], 1.3),
        ratio_row("redis hit (async) / floor", rows[2], rows[0], 1.3),
    ]


# ----------------------------------------------------------------------------- outages


def scripted_gateway(tmp: Path, caching: dict[str, Any]) -> tuple[Gateway, ScriptedProvider]:
    provider = ScriptedProvider()
    data = {
        "project": {"name": "outage"},
        "providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}},
        "caching": caching,
        "rate_limiting": {"providers": {"scripted": PRICED}},
    }
    config = Config(data, None, tmp / ".questfoundry", frozenset())
    manager = get_plugin_manager(
        entry_points=False,
        plugins=[scripted_plugin(provider), ("questfoundry-cache-redis", redis_plugin)],
    )
    return open_gateway(config, manager), provider


@contextmanager
def outage(server: RedisServer, how: str) -> Iterator[None]:
    if how == "stopped":
        server.stop()
        try:
            yield
        finally:
            server.start()
    else:
        server.freeze()
        try:
            yield
        finally:
            server.thaw()


def outage_rows(tmp: Path, server: RedisServer, runs: int, pace: float) -> list[Row]:
    """Calls with caching off, then with Redis stopped and frozen; p99 added over caching off."""
    request = Request(messages=[{"role": "user", "content": bench.PROMPT}], params=bench.PARAMS)
    off, _ = scripted_gateway(tmp / "off", {"enabled": False})
    baseline = timed_row(
        "  caching off (scripted provider)",
        timed(lambda: off.generate(request), runs, max(10, runs // 20), pace),
    )
    off.close()
    rows = [baseline]
    for how in ("stopped", "frozen"):
        gateway, provider = scripted_gateway(
            tmp / how, {"backend": "redis", "redis_url": server.url}
        )
        call = partial(gateway.generate, request)
        timed(call, max(10, runs // 20), 0)  # warm, while Redis is healthy
        with outage(server, how):
            before = provider.calls
            taken = timed(call, runs, 0, pace)
            assert provider.calls - before == runs, "every call should reach the provider"
        gateway.close()
        row = timed_row(f"redis {how}: every call from the outage's start", taken)
        row["p99_added_ms"] = (float(row["p99_us"]) - float(baseline["p99_us"])) / 1000  # type: ignore[arg-type]
        row["calls_over_50ms"] = sum(1 for sample in taken if sample > 50_000)
        rows.append(row)
    return rows


def run(quick: bool = False) -> list[Row]:
    """Every row of the benchmark, in one run against one private Redis server."""
    runs = 2_000 if quick else 20_000
    outage_runs, pace = (1_000, 0.0) if quick else (5_000, 0.002)  # full: ~12 s per outage
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        server = RedisServer(tmp)
        server.start()
        try:
            return hit_rows(tmp, server.url, runs) + outage_rows(tmp, server, outage_runs, pace)
        finally:
            server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, no pacing")
    args = parser.parse_args()
    print(table(run(quick=args.quick)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
