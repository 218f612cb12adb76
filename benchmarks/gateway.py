"""Gateway benchmark: each path beside the raw library doing the same work, in one run.

    python benchmarks/gateway.py [--quick] [--dir /tmp/qf-bench]     (or: tox -e bench)

Rows (median and p99 per operation, in microseconds unless the row says otherwise):

- a cache hit through the whole gateway with the ``memory`` backend beside its floor (the key:
  SHA-256 of the canonical request, and a dict lookup), and with the ``file`` backend beside its
  floor (the key + ``diskcache.Cache.get`` + ``json.loads`` of the same ~1 KB value);
- the file hit again in caches of 1,000 and 1,000,000 entries, each beside the floor on the same
  cache (built once in ``--dir`` and reused: a million entries take a few minutes to write);
- a budget check and ``cost report`` at 1,000 and 1,000,000 ledger rows (from ledger_scale.py);
- a limiter acquire over four buckets: ``token_bucket`` beside a bare ten-line bucket, and the
  shared ``sqlite`` strategy beside ``token_bucket``;
- a cache miss through the gateway to the fake OpenAI server (zero latency, in a process of its
  own), beside the raw ``openai`` SDK call to the same server.

``--quick`` is a smoke test: fewer runs, and 1,000 and 10,000 entries and rows instead.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from questfoundry.builtins.token_bucket import TokenBucketLimiter
from questfoundry.config import Config
from questfoundry.contracts.records import CacheMode, Rate, Reply, Request, Usage
from questfoundry.gateway import Gateway
from questfoundry.gateway.admission import admission
from questfoundry.gateway.codec import encode
from questfoundry.gateway.keys import canonical_fields, key_of
from questfoundry.registry import get_plugin_manager

sys.path.insert(0, str(Path(__file__).parent))
import cache_scale
import ledger_scale

PROMPT = "Describe the lighthouse keeper's lantern room at dusk, in the voice of the book. " * 3
REPLY_TEXT = "The lantern room smelt of brass polish and old rain. " * 16  # ~1 KB cached value
PARAMS = {"temperature": 0.7, "max_tokens": 300}
NAMESPACE = "bench"
MANAGER = get_plugin_manager()

Row = tuple[str, float, float]


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
        "project": {"name": NAMESPACE},
        "providers": {"text": {"default": "openai", "openai": {"model": "gpt-4o"}}},
        "caching": caching,
        **extra,
    }
    return Config(data=data, path=None, project_dir=tmp / ".questfoundry", secret_paths=frozenset())


def request(cache: CacheMode = CacheMode.DEFAULT) -> Request:
    return Request(messages=[{"role": "user", "content": PROMPT}], params=PARAMS, cache=cache)


def cached_value() -> bytes:
    return encode(Reply("openai", "gpt-4o", REPLY_TEXT, usage=Usage(60, 250)))


def gateway_hit(gateway: Gateway) -> Callable[[], Any]:
    """Seed the cache with a ~1 KB reply for the benchmark request; return the hit call."""
    plan = gateway.plan(request())
    assert gateway.cache is not None
    gateway.cache.set(plan.key, cached_value())

    asked = request()  # built once, as the floor's fields are: what is timed is the gateway's work

    def hit() -> None:
        if not gateway.generate(asked).cache_hit:
            raise AssertionError("the benchmark request should be a hit")

    return hit


def key() -> str:
    """The floor's key: the same canonical request, hashed by hand."""
    messages = [{"role": "user", "content": PROMPT}]
    return key_of(NAMESPACE, canonical_fields("openai", "gpt-4o", "text", messages, None, PARAMS))


def floors(directory: Path) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The memory floor (key + dict lookup) and the file floor (key + diskcache get + loads)."""
    import diskcache

    raw = diskcache.Cache(str(directory))
    name = key()
    raw.set(name, cached_value())
    table = {name: cached_value()}

    def memory_floor() -> None:
        table[key()]

    def file_floor() -> None:
        json.loads(raw.get(key()))

    return memory_floor, file_floor


def hit_rows(tmp: Path, runs: int) -> list[Row]:
    """Hits beside their floors; floors first, and each gateway closed (its queued ledger rows
    written) before the next row, so no row pays for another's background work."""
    memory_floor, file_floor = floors(tmp / "raw")  # a cache of its own, as diskcache makes it
    rows = [
        ("  floor: key + dict lookup", *measure(memory_floor, runs)),
        ("  floor: key + diskcache get + json.loads", *measure(file_floor, runs)),
    ]
    folder = tmp / "cache"
    for label, caching in (
        ("hit via gateway, memory cache", {"backend": "memory"}),
        ("hit via gateway, file cache", {"backend": "file", "cache_dir": str(folder)}),
    ):
        gateway = Gateway.from_config(config(tmp, caching), MANAGER)
        rows.append((label, *measure(gateway_hit(gateway), runs)))
        ledger = gateway.runtime.ledger
        queued = len(ledger._hits)
        started = time.perf_counter_ns()
        ledger.flush()
        per_row = (time.perf_counter_ns() - started) / 1000 / max(1, queued)
        rows.append(("  then, in the background: the ledger row of each hit", per_row, per_row))
        gateway.close()
    return rows


def scale_rows(root: Path, sizes: list[int], runs: int) -> list[Row]:
    """The file hit and its floor in caches of each size (built once under ``root``)."""
    rows = []
    for entries in sizes:
        folder = root / f"file-cache-{entries}"
        cache_scale.build(folder, entries).close()
        settings = {"backend": "file", "cache_dir": str(folder), "max_cache_size_mb": 2**20}
        _, floor = floors(folder)
        rows.append((f"  floor at {entries:,} entries", *measure(floor, runs)))
        with tempfile.TemporaryDirectory() as name:
            gateway = Gateway.from_config(config(Path(name), settings), MANAGER)
            hit = gateway_hit(gateway)
            rows.append((f"hit via gateway, file cache of {entries:,}", *measure(hit, runs)))
            gateway.close()
    return rows


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


def limiter_rows(tmp: Path, runs: int) -> list[Row]:
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
    shared, local = ledger_scale.limiter_rows(tmp, runs)
    return [
        (
            "limiter acquire, 4 buckets (token_bucket)",
            *measure(lambda: limiter.acquire(amounts), runs),
        ),
        ("  bare 10-line token bucket, 1 bucket", *measure(bare.acquire, runs)),
        ("limiter acquire, 4 buckets, sqlite (shared)", *shared[1:]),
        ("  the same, token_bucket (in-process)", *local[1:]),
    ]


def ledger_rows(tmp: Path, sizes: list[int], runs: int) -> list[Row]:
    """Budget check and cost report at each ledger size (µs and ms as labelled)."""
    rows = []
    for size in sizes:
        for label, median, p99 in ledger_scale.ledger_rows(tmp, size, runs):
            if label.startswith(
                ("budget check", "cost report --by provider", "cost report --by day")
            ):
                rows.append((label, median, p99))
    return rows


#: the fake OpenAI server in a process of its own, as a real provider is: its threads must not
#: compete for this process's interpreter with the code being measured
SERVER = (
    "import sys, time; from questfoundry.testing.fakes.openai import FakeOpenAI; "
    "server = FakeOpenAI().start(); print(server.base_url, flush=True); sys.stdin.read()"
)


def miss_rows(tmp: Path, runs: int) -> list[Row]:
    try:
        import openai
    except ImportError as exc:  # pragma: no cover - the provider plugin is not installed
        print(f"skipping the provider rows: {exc}", file=sys.stderr)
        return []
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    with subprocess.Popen([sys.executable, "-c", SERVER], text=True, **pipes) as server:
        assert server.stdout is not None and server.stdin is not None
        url = server.stdout.readline().strip()
        settings = {"model": "gpt-4o", "api_key": "sk-bench", "base_url": url}
        cfg = config(tmp, {"backend": "memory"})
        data = {**cfg.data, "providers": {"text": {"default": "openai", "openai": settings}}}
        gateway = Gateway.from_config(Config(data, None, cfg.project_dir, frozenset()), MANAGER)
        raw = openai.OpenAI(api_key="sk-bench", base_url=url, max_retries=0)
        messages = [{"role": "user", "content": PROMPT}]

        def sdk() -> None:
            raw.chat.completions.create(model="gpt-4o", messages=messages, **PARAMS)  # type: ignore[call-overload]

        def through_gateway() -> None:
            gateway.generate(request(CacheMode.REFRESH))

        rows = [
            ("  raw openai SDK call to the same server", *measure(sdk, runs)),
            ("miss via gateway to fake OpenAI (refresh)", *measure(through_gateway, runs)),
        ]
        raw.close()
        gateway.close()
        server.stdin.close()
    return rows


#: (name, top row, bottom row): the ratios the issues set targets for
RATIOS = [
    (
        "memory hit / floor (target <= 2)",
        "hit via gateway, memory cache",
        "floor: key + dict lookup",
    ),
    (
        "file hit / floor (target <= 1.3)",
        "hit via gateway, file cache",
        "floor: key + diskcache get + json.loads",
    ),
    (
        "limiter / bare bucket",
        "limiter acquire, 4 buckets (token_bucket)",
        "bare 10-line token bucket, 1 bucket",
    ),
    (
        "sqlite limiter / token_bucket",
        "limiter acquire, 4 buckets, sqlite (shared)",
        "the same, token_bucket (in-process)",
    ),
    (
        "gateway miss / raw SDK (target <= 1.05)",
        "miss via gateway to fake OpenAI (refresh)",
        "raw openai SDK call to the same server",
    ),
]


def ratio_lines(rows: list[Row], sizes: list[int], ledger_sizes: list[int]) -> list[str]:
    by_label = {label.strip(): median for label, median, _ in rows}
    pairs = list(RATIOS)
    for entries in sizes:
        pairs.append(
            (
                f"file hit / floor at {entries:,} entries (target <= 1.3)",
                f"hit via gateway, file cache of {entries:,}",
                f"floor at {entries:,} entries",
            )
        )
    small, large = ledger_sizes[0], ledger_sizes[-1]
    pairs.append(
        (
            f"budget check at {large:,} / at {small:,} rows (target <= 2)",
            f"budget check (reserve+release) at {large:,} rows, µs",
            f"budget check (reserve+release) at {small:,} rows, µs",
        )
    )
    lines = []
    for name, top, bottom in pairs:
        if top in by_label and bottom in by_label:
            lines.append(f"{name}: {by_label[top] / by_label[bottom]:.2f}x")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller sizes")
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "qf-bench",
        help="where the large file caches are built once and kept",
    )
    args = parser.parse_args()
    runs = 2_000 if args.quick else 20_000
    miss_runs = 200 if args.quick else 2_000
    sizes = [1_000, 10_000] if args.quick else [1_000, 1_000_000]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rows += hit_rows(tmp, runs)
        rows += scale_rows(args.dir, sizes, runs)
        rows += ledger_rows(tmp, sizes, max(200, runs // 10))
        rows += limiter_rows(tmp, runs)
        rows += miss_rows(tmp, miss_runs)
    width = max(len(row[0]) for row in rows)
    print(f"{'operation':<{width}}  {'median':>10}  {'p99':>10}")
    for label, median, p99 in rows:
        print(f"{label:<{width}}  {median:>10.2f}  {p99:>10.2f}")
    print()
    for line in ratio_lines(rows, sizes, sizes):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
