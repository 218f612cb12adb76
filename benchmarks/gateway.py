"""Gateway benchmark: each path beside the raw library doing the same work, in one run.

    python benchmarks/gateway.py [--quick]      (or: tox -e bench)

Rows (median and p99 per operation, in microseconds):

- a cache hit through the whole gateway with the ``memory`` and the ``file`` backend, beside the
  floor of the same work done by hand: SHA-256 of the canonical request + ``diskcache.Cache.get``
  + ``json.loads`` of the same ~1 KB value;
- a limiter acquire over four buckets (requests and tokens, global and per provider), beside a
  bare ten-line token bucket;
- a cache miss through the gateway to the fake OpenAI server (zero latency), beside the raw
  ``openai`` SDK call to the same server.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from questfoundry.calls import CacheMode, Request
from questfoundry.config import Config
from questfoundry.default_plugins.token_bucket import TokenBucketLimiter
from questfoundry.gateway import Gateway
from questfoundry.interfaces import Rate
from questfoundry.limits import admission
from questfoundry.plugins import get_plugin_manager

PROMPT = "Describe the lighthouse keeper's lantern room at dusk, in the voice of the book. " * 3
FILE_HIT = "hit via gateway, file cache"
FLOOR = "floor: sha256 + diskcache get + json.loads"
LIMITER = "limiter acquire, 4 buckets (token_bucket)"
BARE = "bare 10-line token bucket, 1 bucket"
MISS = "miss via gateway to fake OpenAI (refresh)"
SDK = "raw openai SDK call to the same server"
REPLY_TEXT = "The lantern room smelt of brass polish and old rain. " * 16  # ~1 KB cached value


def measure(operation: Callable[[], Any], runs: int) -> tuple[float, float]:
    """Median and p99 of ``runs`` calls, in microseconds, after a warm-up."""
    for _ in range(max(10, runs // 20)):
        operation()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        start = clock()
        operation()
        samples.append((clock() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def config(tmp: Path, caching: dict[str, Any], **extra: Any) -> Config:
    data = {
        "providers": {"text": {"default": "openai", "openai": {"model": "gpt-4o"}}},
        "caching": caching,
        **extra,
    }
    return Config(data=data, path=None, project_dir=tmp / ".questfoundry", secret_paths=frozenset())


def request(cache: CacheMode = CacheMode.DEFAULT) -> Request:
    return Request(
        messages=[{"role": "user", "content": PROMPT}],
        params={"temperature": 0.7, "max_tokens": 300},
        cache=cache,
    )


def seeded_hit(gateway: Gateway) -> Callable[[], Any]:
    """Seed the cache with a ~1 KB reply for the benchmark request; return the hit call."""
    from questfoundry.cached import encode
    from questfoundry.calls import Reply
    from questfoundry.interfaces import Usage

    plan = gateway.plan(request())
    assert gateway.cache is not None
    gateway.cache.set(plan.key, encode(Reply("openai", "gpt-4o", REPLY_TEXT, usage=Usage(60, 250))))

    def hit() -> None:
        reply = gateway.generate(request())
        assert reply.cache_hit

    return hit


def raw_file_floor(tmp: Path) -> Callable[[], Any]:
    import diskcache

    cache = diskcache.Cache(str(tmp / "raw"))
    fields = {  # the same canonical request the gateway hashes
        "provider": "openai",
        "model": "gpt-4o",
        "kind": "text",
        "messages": [["user", PROMPT]],
        "params": {"temperature": 0.7, "max_tokens": 300},
    }
    value = json.dumps({"model": "gpt-4o", "text": REPLY_TEXT, "usage": [60, 250, 0]}).encode()
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
    cache.set(key, value)

    def floor() -> None:
        digest = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()
        json.loads(cache.get(digest))

    return floor


class BareBucket:
    """The ten-line token bucket the limiter is compared with."""

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate, self.capacity, self.level = rate, capacity, capacity
        self.stamp = time.monotonic()
        self.lock = threading.Lock()

    def acquire(self, amount: float = 1.0) -> bool:
        with self.lock:
            now = time.monotonic()
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now
            if self.level >= amount:
                self.level -= amount
                return True
            return False


def limiter_rows(runs: int) -> list[tuple[str, float, float]]:
    big = 1e15  # never runs dry during the benchmark
    limiter = TokenBucketLimiter(
        [
            Rate("global/requests", big, 60),
            Rate("global/tokens", big, 3600),
            Rate("provider:openai/requests", big, 60),
            Rate("provider:openai/tokens", big, 3600),
        ]
    )
    amounts = admission("openai", 400)
    bare = BareBucket(big / 60, big)
    return [
        (
            "limiter acquire, 4 buckets (token_bucket)",
            *measure(lambda: limiter.acquire(amounts), runs),
        ),
        ("  " + BARE, *measure(bare.acquire, runs)),
    ]


def miss_rows(tmp: Path, runs: int) -> list[tuple[str, float, float]]:
    try:
        import openai

        from questfoundry.testing.fakes.openai import FakeOpenAI
    except ImportError as exc:  # pragma: no cover - the provider plugin is not installed
        print(f"skipping the provider rows: {exc}", file=sys.stderr)
        return []
    with FakeOpenAI() as server:
        url = f"{server.url}/v1"
        cfg = config(tmp, {"enabled": True, "backend": "memory"})
        data = dict(cfg.data)
        data["providers"] = {
            "text": {
                "default": "openai",
                "openai": {
                    "model": "gpt-4o",
                    "api_key": "sk-bench",
                    "base_url": url,
                },
            }
        }
        gateway = Gateway.from_config(
            Config(data, None, cfg.project_dir, frozenset()), get_plugin_manager()
        )
        raw = openai.OpenAI(api_key="sk-bench", base_url=f"{server.url}/v1", max_retries=0)
        messages = [{"role": "user", "content": PROMPT}]

        def sdk() -> None:
            raw.chat.completions.create(
                model="gpt-4o",
                messages=messages,
                temperature=0.7,
                max_tokens=300,  # type: ignore[arg-type]
            )

        def through_gateway() -> None:
            gateway.generate(request(CacheMode.REFRESH))

        rows = [
            (MISS, *measure(through_gateway, runs)),
            ("  " + SDK, *measure(sdk, runs)),
        ]
        raw.close()
        gateway.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs (a smoke test)")
    args = parser.parse_args()
    runs = 2_000 if args.quick else 20_000
    miss_runs = 200 if args.quick else 2_000
    manager = get_plugin_manager()
    rows: list[tuple[str, float, float]] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        memory = Gateway.from_config(config(tmp, {"backend": "memory"}), manager)
        rows.append(("hit via gateway, memory cache", *measure(seeded_hit(memory), runs)))
        memory.close()
        if "file" in manager.backends("cache backend"):
            cache_dir = str(tmp / "cache")
            file = Gateway.from_config(
                config(tmp, {"backend": "file", "cache_dir": cache_dir}), manager
            )
            rows.append((FILE_HIT, *measure(seeded_hit(file), runs)))
            file.close()
        rows.append(
            ("  floor: sha256 + diskcache get + json.loads", *measure(raw_file_floor(tmp), runs))
        )
        rows += limiter_rows(runs)
        rows += miss_rows(tmp, miss_runs)
    width = max(len(row[0]) for row in rows)
    print(f"{'operation':<{width}}  {'median µs':>10}  {'p99 µs':>10}")
    for label, median, p99 in rows:
        print(f"{label:<{width}}  {median:>10.2f}  {p99:>10.2f}")
    by_label = {label.strip(): median for label, median, _ in rows}
    ratios = [
        (
            "file hit / floor",
            "hit via gateway, file cache",
            "floor: sha256 + diskcache get + json.loads",
        ),
        (
            "limiter / bare bucket",
            "limiter acquire, 4 buckets (token_bucket)",
            "bare 10-line token bucket, 1 bucket",
        ),
        (
            "gateway miss / raw SDK",
            "miss via gateway to fake OpenAI (refresh)",
            "raw openai SDK call to the same server",
        ),
    ]
    print()
    for name, top, bottom in ratios:
        if top in by_label and bottom in by_label:
            extra = by_label[top] - by_label[bottom]
            print(f"{name}: {by_label[top] / by_label[bottom]:.2f}x  (+{extra:.1f} µs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
