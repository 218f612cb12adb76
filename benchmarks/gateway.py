"""Gateway benchmark: each path beside the raw library doing the same work, in one run.

    python benchmarks/gateway.py [--quick] [--check] [--dir /tmp/qf-bench]
    tox -e bench -- --quick --check

Rows (microseconds: median, p99, max); operations compared with each other are timed in turns
(``rows.interleaved``), so a machine busy with something else slows them alike:

- cache hits: through the whole gateway with the ``memory`` backend beside its floor (the key,
  a SHA-256 of the canonical request, and a dict lookup), and with the ``file`` backend beside
  its floor (the key + ``diskcache.Cache.get`` + ``json.loads`` of the same ~1 KB value); then
  what the ledger's background writer spends on each hit (hits are counted per day, provider,
  model, role and run), counted with the memory hit;
- the file hit again in caches of 1,000 and 1,000,000 entries, each beside the floor on the same
  cache (built once in ``--dir`` and reused: a million entries take a few minutes to write);
- a budget check and the ledger's cost for a paid call at 1,000 and 1,000,000 ledger rows
  (``ledger_scale.py``);
- a limiter acquire over four buckets: ``token_bucket`` beside a bare ten-line bucket, and the
  shared ``sqlite`` strategy (served from its lease, and with limits too small for one) beside
  ``token_bucket``;
- cache misses to the fake OpenAI server (zero latency, in a process of its own), every request a
  new one, in turns: the raw ``openai`` SDK call (``chat.completions.create``, as users call it);
  the same request through the client's generic ``post``, the path the provider plugin takes
  (it skips ``create``'s typed-dict transform of the arguments); the gateway with the cache off;
  the gateway with the default config (file cache, the ``sqlite`` limiter over four buckets, the
  ledger). The targets are held against ``create``; the rows against ``post`` show what the
  gateway itself adds;
- each provider plugin (OpenAI, Ollama, Gemini) beside its own SDK (``providers.py``).

Each ratio row names its target; ``--check`` exits 1 when one is above it (timings on a shared
machine are noisy: run it by hand, not in CI). ``--quick``: fewer runs, 1,000 and 10,000 entries
and rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from questfoundry.builtins.token_bucket import TokenBucketLimiter
from questfoundry.config import Config
from questfoundry.contracts.records import Rate, Reply, Request, Usage
from questfoundry.gateway import Gateway
from questfoundry.gateway.admission import admission
from questfoundry.gateway.codec import encode
from questfoundry.gateway.keys import canonical_fields, key_of
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import open_gateway

sys.path.insert(0, str(Path(__file__).parent))
import cache_scale
import ledger_scale
import providers
from rows import Row, finish, interleaved, ratio_row, timed, timed_row

PROMPT = "Describe the lighthouse keeper's lantern room at dusk, in the voice of the book. " * 3
REPLY_TEXT = "The lantern room smelt of brass polish and old rain. " * 16  # ~1 KB cached value
PARAMS = {"temperature": 0.7, "max_tokens": 300}
NAMESPACE = "bench"
MANAGER = get_plugin_manager()
BIG = 10**12  # limits that never run dry during the benchmark
#: the default config's limits: every layer a limiter takes (requests and tokens, global and
#: per provider), on the default (sqlite) strategy
RATES = {
    "global": {"requests_per_minute": BIG, "tokens_per_hour": BIG},
    "providers": {"openai": {"requests_per_minute": BIG, "tokens_per_hour": BIG}},
}


def config(root: Path, *, openai: dict[str, Any] | None = None, **sections: Any) -> Config:
    settings = {"model": "gpt-4o", **(openai or {})}
    data = {
        "project": {"name": NAMESPACE},
        "providers": {"text": {"default": "openai", "openai": settings}},
        **sections,
    }
    return Config(
        data=data, path=None, project_dir=root / ".questfoundry", secret_paths=frozenset()
    )


def request() -> Request:
    return Request(messages=[{"role": "user", "content": PROMPT}], params=PARAMS)


def cached_value() -> bytes:
    return encode(Reply("openai", "gpt-4o", REPLY_TEXT, usage=Usage(60, 250)))


def key() -> str:
    """The floor's key: the same canonical request, hashed by hand."""
    messages = [{"role": "user", "content": PROMPT}]
    return key_of(NAMESPACE, canonical_fields("openai", "gpt-4o", "text", messages, None, PARAMS))


# ----------------------------------------------------------------------------- hits


def gateway_hit(gateway: Gateway) -> Callable[[], None]:
    """Seed the cache with a ~1 KB reply for the benchmark request; return the hit call."""
    plan = gateway.plan(request())
    assert gateway.cache is not None
    gateway.cache.set(plan.key, cached_value())
    asked = request()  # built once, as the floor's fields are: what is timed is the gateway's work

    def hit() -> None:
        if not gateway.generate(asked).cache_hit:
            raise AssertionError("the benchmark request should be a hit")

    return hit


def floors(directory: Path) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The memory floor (key + dict lookup) and the file floor (key + diskcache get + loads)."""
    import diskcache

    raw = diskcache.Cache(str(directory))
    name = key()
    raw.set(name, cached_value())
    table_ = {name: cached_value()}

    def memory_floor() -> None:
        table_[key()]

    def file_floor() -> None:
        json.loads(raw.get(key()))

    return memory_floor, file_floor


def hit_rows(tmp: Path, runs: int) -> list[Row]:
    """Both hits beside their floors, in turns; then the ledger row each memory hit wrote."""
    memory_floor, file_floor = floors(tmp / "raw")  # a cache of its own, as diskcache makes it
    memory = open_gateway(config(tmp / "memory", caching={"backend": "memory"}), MANAGER)
    folder = {"backend": "file", "cache_dir": str(tmp / "cache")}
    file = open_gateway(config(tmp / "file", caching=folder), MANAGER)
    taken = interleaved(
        {
            "memory floor": memory_floor,
            "memory hit": gateway_hit(memory),
            "file floor": file_floor,
            "file hit": gateway_hit(file),
        },
        runs,
    )
    rows = {name: timed_row(name, samples) for name, samples in taken.items()}
    ledger = memory.runtime.ledger
    queued = len(ledger._hits)
    started = time.perf_counter_ns()
    ledger.flush()
    per_row = (time.perf_counter_ns() - started) / 1000 / max(1, queued)
    with_row = float(rows["memory hit"]["median_us"]) + per_row  # type: ignore[arg-type]
    memory.close()
    file.close()
    return [
        {**rows["memory floor"], "operation": "  floor: key + dict lookup"},
        {**rows["memory hit"], "operation": "hit via gateway, memory cache"},
        {
            "operation": "  then, in the background: the ledger's count of each hit",
            "median_us": per_row,
        },
        {"operation": "  the memory hit with its row", "median_us": with_row},
        {**rows["file floor"], "operation": "  floor: key + diskcache get + json.loads"},
        {**rows["file hit"], "operation": "hit via gateway, file cache"},
        ratio_row("memory hit / floor", rows["memory hit"], rows["memory floor"], 2.0),
        ratio_row(
            "memory hit with its ledger row / floor",
            {"median_us": with_row},
            rows["memory floor"],
            2.0,
        ),
        ratio_row("file hit / floor", rows["file hit"], rows["file floor"], 1.3),
    ]


def scale_rows(root: Path, sizes: list[int], runs: int) -> list[Row]:
    """The file hit and its floor, in turns, in caches of each size (built once under ``root``)."""
    rows: list[Row] = []
    for entries in sizes:
        folder = root / f"file-cache-{entries}"
        cache_scale.build(folder, entries).close()
        settings = {"backend": "file", "cache_dir": str(folder), "max_cache_size_mb": 2**20}
        _, floor = floors(folder)
        with tempfile.TemporaryDirectory() as name:
            gateway = open_gateway(config(Path(name), caching=settings), MANAGER)
            taken = interleaved({"floor": floor, "hit": gateway_hit(gateway)}, runs)
            gateway.close()
        floor_row = timed_row(f"  floor at {entries:,} entries", taken["floor"])
        hit_row = timed_row(f"hit via gateway, file cache of {entries:,}", taken["hit"])
        rows += [
            floor_row,
            hit_row,
            ratio_row(f"file hit / floor at {entries:,} entries", hit_row, floor_row, 1.3),
        ]
    return rows


# ----------------------------------------------------------------------------- limiter, ledger


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
    limiter = TokenBucketLimiter(
        [
            Rate("global/requests", BIG, 60),
            Rate("global/tokens", BIG, 3600),
            Rate("provider:openai/requests", BIG, 60),
            Rate("provider:openai/tokens", BIG, 3600),
        ]
    )
    amounts = admission("openai", 400)
    bare = BareBucket(BIG / 60, BIG)
    ours = timed_row(
        "limiter acquire, 4 buckets (token_bucket)", timed(lambda: limiter.acquire(amounts), runs)
    )
    floor = timed_row("  bare 10-line token bucket, 1 bucket", timed(bare.acquire, runs))
    shared, exact, local = ledger_scale.limiter_rows(tmp, runs)
    return [
        ours,
        floor,
        shared,
        exact,
        local,
        ratio_row("limiter / bare bucket", ours, floor, None),
        ratio_row("sqlite limiter / token_bucket (a transaction per lease)", shared, local, None),
    ]


def ledger_rows(tmp: Path, sizes: list[int], runs: int) -> list[Row]:
    """The budget check and a paid call's ledger work at each ledger size."""
    rows: list[Row] = []
    kept = (
        "budget check",
        "a paid call's intent",
        "  then, in the background",
        "cost report --by provider",
    )
    checks: list[Row] = []
    for size in sizes:
        for row in ledger_scale.ledger_rows(tmp, size, runs):
            if str(row["operation"]).startswith(kept):
                rows.append(row)
                if str(row["operation"]).startswith("budget check"):
                    checks.append(row)
    small, large = checks[0], checks[-1]
    rows.append(
        ratio_row(f"budget check at {sizes[-1]:,} / at {sizes[0]:,} rows", large, small, 2.0)
    )
    return rows


# ----------------------------------------------------------------------------- misses

#: the fake OpenAI server in a process of its own, as a real provider is: its threads must not
#: compete for this process's interpreter with the code being measured
SERVER = (
    "import sys; from questfoundry.testing.fakes.openai import FakeOpenAI; "
    "server = FakeOpenAI().start(); print(server.base_url, flush=True); sys.stdin.read()"
)


@contextmanager
def fake_openai() -> Iterator[str]:
    """The base URL of a fake OpenAI server running in a process of its own."""
    pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
    with subprocess.Popen([sys.executable, "-c", SERVER], text=True, **pipes) as server:
        assert server.stdout is not None and server.stdin is not None
        try:
            yield server.stdout.readline().strip()
        finally:
            server.stdin.close()


def miss_rows(tmp: Path, runs: int) -> list[Row]:
    """Misses to the same server in turns: the raw SDK, the gateway without and with a cache."""
    try:
        import openai
        from openai.types.chat import ChatCompletion
    except ImportError as exc:  # pragma: no cover - the provider plugin is not installed
        return [{"operation": "misses: skipped", "note": str(exc)}]
    with fake_openai() as url:
        settings = {"api_key": "sk-bench", "base_url": url}
        off = open_gateway(
            config(tmp / "off", openai=settings, caching={"enabled": False}), MANAGER
        )
        default = open_gateway(
            config(tmp / "default", openai=settings, rate_limiting=RATES), MANAGER
        )
        raw = openai.OpenAI(api_key="sk-bench", base_url=url, max_retries=0)
        count = itertools.count()

        def new() -> list[dict[str, str]]:  # a new question each time: every call is a miss
            return [{"role": "user", "content": f"{PROMPT} (take {next(count)})"}]

        def sdk() -> None:
            raw.chat.completions.create(model="gpt-4o", messages=new(), **PARAMS)  # type: ignore[call-overload]

        def post() -> None:
            body = {"model": "gpt-4o", "messages": new(), **PARAMS}
            raw.post("/chat/completions", cast_to=ChatCompletion, body=body)

        taken = interleaved(
            {
                "sdk": sdk,
                "post": post,
                "off": lambda: off.generate(Request(messages=new(), params=PARAMS)),
                "default": lambda: default.generate(Request(messages=new(), params=PARAMS)),
            },
            runs,
            warm=30,
        )
        assert type(default.cache).__name__ == "FileCache", "the default cache is the file cache"
        assert type(default.limiter).__name__ == "SQLiteLimiter", "the default limiter is sqlite"
        raw.close()
        off.close()
        default.close()
    floor = timed_row("  raw openai SDK call to the same server", taken["sdk"])
    posted = timed_row("  the same through the SDK's post (the plugin's path)", taken["post"])
    without = timed_row("miss via gateway, cache off", taken["off"])
    full = timed_row(
        "miss via gateway, default config (file cache, sqlite limiter)", taken["default"]
    )
    return [
        floor,
        posted,
        without,
        full,
        ratio_row("gateway miss, cache off / raw SDK", without, floor, 1.05),
        ratio_row("gateway miss, default config / raw SDK", full, floor, 1.10),
        ratio_row("gateway miss, cache off / the SDK's post", without, posted, None),
        ratio_row("gateway miss, default config / the SDK's post", full, posted, None),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller sizes")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a ratio misses its target"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(tempfile.gettempdir()) / "qf-bench",
        help="where the large file caches are built once and kept",
    )
    args = parser.parse_args(argv)
    runs = 2_000 if args.quick else 20_000
    miss_runs = 300 if args.quick else 1_000
    sizes = [1_000, 10_000] if args.quick else [1_000, 1_000_000]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        rows += hit_rows(tmp, runs)
        rows += scale_rows(args.dir, sizes, runs)
        rows += ledger_rows(tmp, sizes, max(200, runs // 10))
        rows += limiter_rows(tmp, runs)
        rows += miss_rows(tmp, miss_runs)
        for provider in providers.PROVIDERS:
            rows += providers.provider_rows(provider, tmp / provider.name, miss_runs // 2)
    return finish(rows, args.check)


if __name__ == "__main__":
    sys.exit(main())
