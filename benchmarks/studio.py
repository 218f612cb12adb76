"""Studio benchmark: is a run bound by the provider, or by the studio's own bookkeeping?

    python benchmarks/studio.py [--quick] [--check] [--concurrency 64] [--sizes N ...]
                                [--state file|redis]

``story_spark`` writes books of 50, 400 and 1,000 sections (``--quick``: 50 and 400) against the
fake OpenAI server answering every request after 0 or 200 ms, through the default config (file
cache, ``sqlite`` limiter holding four limits, ledger, file state store). Each case runs in a
fresh process of its own, with a server in another (a thread per connection: it answers as many
requests at once as it is sent), so the case's CPU time and peak memory are its own.

The first run (every call a miss) is held to its bound, ``calls * latency / concurrency +
chain``: what the calls would take if ``--concurrency`` of them were always in flight, plus the
dependency chain (the longest run of calls each waiting for the one before, through the loop's
steps: outline, a part, a section, its review, its rewrite), ``latency`` each. That is Brent's
bound for a greedy scheduler: a run far above it waits on the studio, not the provider. Its CPU
per call (every thread of the case's process) is shown beside the same requests sent again
through the raw ``openai`` SDK at the same concurrency: the floor any caller pays. Then the run
is done again, every call answered by the response cache, and timed per section. Peak memory is
the case process's max RSS.

``--state redis`` keeps the project's state in Redis (``QUESTFOUNDRY_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379/15``, under a key prefix of its own, removed afterwards) instead of
files: a file store replaces each document's file atomically (a temporary file renamed over it),
and ext4 starts writing a file out at once when it is renamed over another.

Targets (issue 21; ``--check`` exits 1 when a ratio is above its target): at 200 ms, wall / bound
<= 1.5; CPU per call <= 1.5 ms; the cached re-run <= 0.5 ms a section. Timings on a shared
machine are noisy: run it by hand and keep the table in your notes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from rows import Row, finish

SIZES = (50, 400, 1000)
QUICK_SIZES = (50, 400)
LATENCIES = (0.0, 0.2)
CONCURRENCY = 64
PREMISE = "A lighthouse keeper's apprentice finds the lamp dark and the keeper gone."
BIG = 10**12  # limits that never run dry: the limiter does its work, but never makes a call wait
#: the default config: file cache and state, the ledger, the ``sqlite`` limiter over four layers
LIMITS = {"requests_per_minute": BIG, "tokens_per_hour": BIG}
PRICES = {"cost_per_input_token": 0.00002, "cost_per_output_token": 0.00006}
WALL_TARGET = 1.5
CPU_MS_TARGET = 1.5
CACHED_MS_TARGET = 0.5

#: the fake OpenAI server, in a process of its own; each line ``bodies`` it reads is answered
#: with one line: the JSON bodies of the chat requests it received since the last (forgetting them)
SERVER = """
import json, sys
from questfoundry.testing.fakes import FakeOpenAI
server = FakeOpenAI(latency=float(sys.argv[1])).start()
print(server.base_url, flush=True)
for line in sys.stdin:
    bodies = [r.body for r in server.requests if r.path.endswith("/chat/completions")]
    server.reset()
    print(json.dumps(bodies), flush=True)
"""


class StandIn:
    """A fake OpenAI server answering every request after ``latency`` s, in a process of its
    own (a thread per connection: it answers as many requests at once as it is sent)."""

    def __init__(self, latency: float) -> None:
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(latency)], text=True, **pipes
        )
        assert self.process.stdout is not None and self.process.stdin is not None
        self.stdin, self.stdout = self.process.stdin, self.process.stdout
        self.url = self.stdout.readline().strip()

    def bodies(self) -> list[dict[str, Any]]:
        """The chat requests received since the last ask, as sent (the SDK's arguments)."""
        self.stdin.write("bodies\n")
        self.stdin.flush()
        bodies: list[dict[str, Any]] = json.loads(self.stdout.readline())
        return bodies

    def __enter__(self) -> StandIn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stdin.close()
        self.process.wait(30)


# ----------------------------------------------------------------------------- one case


#: the step a call belongs to, and how many calls came before it on its path within that step
STEP: contextvars.ContextVar[str] = contextvars.ContextVar("step", default="")
DEPTH: contextvars.ContextVar[int] = contextvars.ContextVar("depth", default=0)


def traced_showrunner(runtime: Any, concurrency: int, deepest: dict[str, int]) -> Any:
    """A Showrunner whose roles note, per step, the longest run of calls each awaiting the last.

    A step's task (and every task its fan-out starts) carries :data:`DEPTH`, the calls already
    answered on its way; the progress callback names the step in its task (:func:`progress`).
    """
    from questfoundry.studio import Role, Showrunner

    class Traced(Role):
        async def agenerate(self, prompt: str, **options: Any) -> Any:
            reply = await super().agenerate(prompt, **options)
            depth = DEPTH.get() + 1
            DEPTH.set(depth)
            step = STEP.get()
            deepest[step] = max(deepest.get(step, 0), depth)
            return reply

    class Tracing(Showrunner):
        def __init__(self) -> None:
            super().__init__(runtime, concurrency=concurrency)
            self.traced: dict[str, Role] = {}

        def role(self, name: str) -> Role:
            found = self.traced.get(name)
            if found is None:
                role = super().role(name)
                found = Traced(role.spec, role.resolved, role.instructions, role.runtime)
                self.traced[name] = found
            return found

    return Tracing()


def progress(event: Any) -> None:
    """Name the step in the task reporting it (a step's own task, or its fan-out's)."""
    if event.status == "running":
        STEP.set(event.step)


def chain(loop: Any, deepest: Mapping[str, int]) -> int:
    """Calls on the longest path through ``loop``'s steps, each step adding its own deepest."""
    from questfoundry.studio.engine import dependencies

    waits = dependencies(loop)
    longest: dict[str, int] = {}

    def through(step: str) -> int:
        if step not in longest:
            before = max((through(other) for other in waits[step]), default=0)
            longest[step] = before + deepest.get(step, 0)
        return longest[step]

    return max(through(step) for step in waits)


@contextmanager
def project(url: str, concurrency: int, state: str) -> Iterator[tuple[Any, dict[str, int]]]:
    """A Showrunner (traced) over a new project with the default config, talking to ``url``;
    and the deepest chain of calls of each step of its latest run. ``state``: ``file`` (the
    default config) or ``redis`` (``--state``)."""
    from questfoundry.config import Config
    from questfoundry.registry import get_plugin_manager
    from questfoundry.runtime import Runtime
    from questfoundry.testing.redis import client, delete_prefix, test_redis_url

    openai = {"model": "gpt-4o-mini", "api_key": "sk-bench", "base_url": url}
    data = {
        "providers": {"text": {"default": "openai", "openai": openai}},
        "rate_limiting": {"global": LIMITS, "providers": {"openai": {**LIMITS, **PRICES}}},
    }
    prefix = f"qf-studio-bench-{uuid.uuid4().hex[:8]}:"
    if state == "redis":
        data["state"] = {"backend": "redis", "redis_url": test_redis_url(), "key_prefix": prefix}
    try:
        with tempfile.TemporaryDirectory(prefix="qf-studio-bench-") as root:
            config = Config(data, None, Path(root) / ".questfoundry", frozenset())
            deepest: dict[str, int] = {}
            runtime = Runtime(config, get_plugin_manager())
            with traced_showrunner(runtime, concurrency, deepest) as showrunner:
                yield showrunner, deepest
    finally:
        if state == "redis":
            with client(test_redis_url()) as redis_client:
                delete_prefix(redis_client, prefix)


def run_case(latency: float, sections: int, concurrency: int, state: str) -> dict[str, Any]:
    """One book written twice in a new project (in this process), then the first run's requests
    sent again through the raw ``openai`` SDK: what each took. A book of two sections is written
    first, elsewhere, so what a process does once (imports, first connections) is not counted."""
    result: dict[str, Any] = {"sections": sections, "concurrency": concurrency}
    with StandIn(latency) as server:
        with project(server.url, concurrency, state) as (showrunner, _):
            showrunner.run("story_spark", sections=2, brief={"premise": PREMISE})
        server.bodies()
        with project(server.url, concurrency, state) as (showrunner, deepest):
            for name in ("first", "cached"):
                deepest.clear()
                cpu, started = time.process_time(), time.perf_counter()
                report = showrunner.run(
                    "story_spark", sections=sections, brief={"premise": PREMISE}, progress=progress
                )
                result[name] = {
                    "wall": time.perf_counter() - started,
                    "cpu": time.process_time() - cpu,
                    "calls": report.totals.calls,
                    "hits": report.totals.cache_hits,
                    "chain": chain(showrunner.loop("story_spark"), deepest),
                }
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        bodies = server.bodies()
        result["sdk_cpu"] = asyncio.run(raw_sdk(server.url, bodies, concurrency))
        with project(server.url, concurrency, state) as (showrunner, _):
            gateway = showrunner.runtime.gateway
            result["gateway_cpu"] = asyncio.run(gateway_alone(gateway, bodies, concurrency))
    return result


async def per_call(send: Callable[[Any], Awaitable[Any]], items: list[Any], at_once: int) -> float:
    """Process CPU seconds per item of ``send`` on every item, ``at_once`` at a time (after the
    first alone, so what is made once, a connection, is made before)."""
    limit = asyncio.Semaphore(at_once)

    async def one(item: Any) -> None:
        async with limit:
            await send(item)

    await send(items[0])
    cpu = time.process_time()
    await asyncio.gather(*(one(item) for item in items[1:]))
    return (time.process_time() - cpu) / (len(items) - 1)


async def raw_sdk(url: str, bodies: list[dict[str, Any]], concurrency: int) -> float:
    """CPU per request of sending ``bodies`` through the raw ``openai`` SDK, ``concurrency`` at a
    time: the floor of what a call costs the process that makes it."""
    import openai

    async with openai.AsyncOpenAI(api_key="sk-bench", base_url=url, max_retries=0) as client:

        async def send(body: dict[str, Any]) -> None:
            await client.chat.completions.create(**body)

        return await per_call(send, bodies, concurrency)


async def gateway_alone(gateway: Any, bodies: list[dict[str, Any]], concurrency: int) -> float:
    """CPU per request of asking the same questions of the gateway alone (no studio), each a miss
    (a new project's cache): what the gateway adds to the SDK, the studio left out."""
    from questfoundry.contracts.records import Message, Request
    from questfoundry.contracts.structured import schema_params

    def request(body: dict[str, Any]) -> Request:
        params: dict[str, Any] = {"max_tokens": body.get("max_tokens")}
        form = body.get("response_format") or {}
        if form.get("type") == "json_schema":
            params |= schema_params(form["json_schema"]["name"], form["json_schema"]["schema"])
        messages = tuple(Message(m["role"], m["content"]) for m in body["messages"])
        return Request(messages=messages, params=params)

    async def send(body: dict[str, Any]) -> None:
        await gateway.agenerate(request(body))

    return await per_call(send, bodies, concurrency)


# ----------------------------------------------------------------------------- the table


def case_rows(latency: float, case: dict[str, Any]) -> list[Row]:
    first, cached = case["first"], case["cached"]
    sections, concurrency = case["sections"], case["concurrency"]
    name = f"{sections:,} sections, {latency * 1000:g} ms"
    bound = first["calls"] * latency / concurrency + first["chain"] * latency
    cpu_ms = first["cpu"] / first["calls"] * 1000
    per_section = cached["wall"] / sections * 1000
    sdk_ms, gateway_ms = case["sdk_cpu"] * 1000, case["gateway_cpu"] * 1000
    rows: list[Row] = [
        {
            "operation": f"{name}: first run",
            "note": (
                f"{first['wall']:.2f} s for {first['calls']:,} calls ({first['hits']} hits), "
                f"bound {bound:.2f} s (chain of {first['chain']}); CPU {cpu_ms:.2f} ms a call; "
                f"peak {case['peak_mb']:.0f} MB"
            ),
        },
        {
            "operation": f"{name}: the same requests, raw SDK",
            "note": f"CPU {sdk_ms:.2f} ms a call: QuestFoundry adds {cpu_ms - sdk_ms:.2f} ms",
        },
        {
            "operation": f"{name}: the same requests, gateway alone",
            "note": (
                f"CPU {gateway_ms:.2f} ms a call: the gateway adds {gateway_ms - sdk_ms:.2f} ms "
                f"to the SDK, the studio {cpu_ms - gateway_ms:.2f} ms to the gateway"
            ),
        },
        {
            "operation": f"{name}: re-run from the cache",
            "note": (
                f"{cached['wall']:.2f} s for {cached['calls']:,} calls ({cached['hits']} hits): "
                f"{per_section:.2f} ms a section"
            ),
        },
    ]
    if latency:
        rows.append(_ratio(f"{name}: wall / bound", first["wall"] / bound, WALL_TARGET))
    rows.append(_ratio(f"{name}: CPU per call / {CPU_MS_TARGET} ms", cpu_ms / CPU_MS_TARGET))
    rows.append(_ratio(f"{name}: CPU per call / raw SDK's", cpu_ms / sdk_ms, None))
    rows.append(
        _ratio(f"{name}: cached re-run per section / {CACHED_MS_TARGET} ms", per_section / 0.5)
    )
    return rows


def _ratio(operation: str, ratio: float, target: float | None = 1.0) -> Row:
    return {"operation": operation, "ratio": ratio, "target": target}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 and 400 sections only")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 when a ratio misses its target"
    )
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--sizes", type=int, nargs="+", help="book sizes (sections) to run")
    parser.add_argument(
        "--state", choices=("file", "redis"), default="file", help="the project's state store"
    )
    parser.add_argument("--case", nargs=2, metavar=("LATENCY", "SECTIONS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.case:  # one case, in a process of its own
        print(
            json.dumps(
                run_case(float(args.case[0]), int(args.case[1]), args.concurrency, args.state)
            )
        )
        return 0
    sizes = args.sizes or (QUICK_SIZES if args.quick else SIZES)
    rows: list[Row] = []
    for latency in LATENCIES:
        for sections in sizes:
            command = [sys.executable, __file__, "--case", str(latency), str(sections)]
            command += ["--concurrency", str(args.concurrency), "--state", args.state]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            rows += case_rows(latency, json.loads(done.stdout.splitlines()[-1]))
    return finish(rows, args.check)


if __name__ == "__main__":
    sys.exit(main())
