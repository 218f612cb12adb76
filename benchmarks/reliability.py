"""Reliability figures: how long `questfoundry ask` takes against hostile servers, and what a budget
lets through when several processes spend against it.

    python benchmarks/reliability.py [--processes 8] [--asks 5]

Every scenario runs the real command (``python -m questfoundry ask``) in a temporary project whose
config points at a fake OpenAI server on 127.0.0.1:

- a 429 whose ``Retry-After`` is 86400 seconds, ``inf``, and an HTTP date in 2099;
- a server that trickles its reply one byte a second, and one that never answers, with
  ``timeout_seconds: 3`` (every attempt, then with ``retry.deadline_seconds: 5``);
- ``--processes`` processes asking ``--asks`` long-winded questions each (replies of 8,000 tokens
  when nothing caps them) under a daily budget of $0.50 on gpt-4o: what the ledger recorded;
- four processes asking five times each under ``requests_per_minute: 10`` with the default limiter
  (``sqlite``, shared by the processes): how many requests the provider saw;
- masking secret fragments in a megabyte of text (what every error and log line of that size pays),
  beside ``str.find`` of one fragment over the same text.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from textwrap import dedent

from questfoundry.testing.fakes import FakeOpenAI
from questfoundry.testing.fakes.base import Fault

KEY_VAR = "QF_RELIABILITY_KEY"


def project(root: Path, server: FakeOpenAI, extra: str = "") -> Path:
    config = root / ".questfoundry" / "config.yml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        dedent(f"""\
            providers:
              text:
                default: openai
                openai:
                  api_key: ${{{KEY_VAR}}}
                  base_url: {server.base_url}
                  model: gpt-4o
                  timeout_seconds: 3
            caching:
              enabled: false
            """)
        + extra,
        encoding="utf-8",
    )
    return config


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QUESTFOUNDRY_")}
    env[KEY_VAR] = "sk-reliability-0000"
    return env


def ask(config: Path, prompt: str) -> tuple[float, int, str]:
    """Seconds, exit status and last stderr line of one ``questfoundry ask``."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "questfoundry", "--config", str(config), "ask", prompt],
        capture_output=True,
        text=True,
        env=environment(),
        timeout=900,
        check=False,
    )
    lines = done.stderr.strip().splitlines()
    return time.monotonic() - started, done.returncode, lines[-1] if lines else ""


@contextmanager
def server(**options: object) -> Iterator[FakeOpenAI]:
    with FakeOpenAI(**options) as fake:  # type: ignore[arg-type]
        yield fake


def waits(root: Path) -> list[tuple[str, float, int, str]]:
    rows = []
    for label, retry_after in (
        ("429, Retry-After: 86400", 86_400.0),
        ("429, Retry-After: inf (then a reply)", "inf"),
        ("429, Retry-After: Thu, 01 Jan 2099 00:00:00 GMT", "Thu, 01 Jan 2099 00:00:00 GMT"),
    ):
        with server(retry_after=retry_after) as fake:
            fake.fail_next(Fault.RATE_LIMIT)
            rows.append((label, *ask(project(root / label[:12], fake), "Where is the key?")))
    for fault in (Fault.TRICKLE, Fault.NEVER_ANSWER):
        for deadline in (None, 5):
            extra = f"retry:\n  deadline_seconds: {deadline}\n" if deadline else ""
            label = f"{fault.value} on every attempt, timeout_seconds: 3"
            label += f", deadline_seconds: {deadline}" if deadline else ", default retries"
            with server(trickle_seconds=1.0) as fake:
                fake.fail_next(fault, times=100)
                folder = root / f"{fault.value}-{deadline}"
                rows.append((label, *ask(project(folder, fake, extra), "Is anyone there?")))
    return rows


#: one worker process: ``questfoundry ask`` run ``argv[3]`` times, as that many commands would
WORKER = """
import sys
from questfoundry.cli import main
for n in range(int(sys.argv[3])):
    try:
        main(["--config", sys.argv[1], "ask", f"Tell the whole saga, part {sys.argv[2]}.{n}"])
    except SystemExit:
        pass
"""


def run_workers(config: Path, processes: int, asks: int) -> float:
    """Start the workers at once and wait for them all; the seconds it took."""
    started = time.monotonic()
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(config), str(n), str(asks)],
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for n in range(processes)
    ]
    for worker in workers:
        worker.wait(timeout=900)
    return time.monotonic() - started


def shared_limit(root: Path) -> tuple[int, float]:
    """Requests the provider saw from 4 processes x 5 asks under 10 a minute, and the seconds."""
    limits = "rate_limiting:\n  max_wait_seconds: 1\n  global:\n    requests_per_minute: 10\n"
    with server() as fake:
        seconds = run_workers(project(root / "shared", fake, limits), 4, 5)
        return len(fake.requests), seconds


def budget(root: Path, processes: int, asks: int) -> tuple[int, float, float]:
    """Calls paid, dollars recorded, and the most one call could cost, under $0.50 a day."""
    limits = "rate_limiting:\n  global:\n    cost_per_day: 0.5\n"
    with server(reply_tokens=8_000) as fake:
        config = project(root / "budget", fake, limits)
        run_workers(config, processes, asks)
    ledger = config.parent / "ledger.sqlite"
    with sqlite3.connect(ledger) as conn:
        calls, pico = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM calls WHERE status = 'spent'"
        ).fetchone()
    # the most one call can cost: its prompt plus the 4,096-token cap at gpt-4o's prices
    most = (40 * 2.5 + 4096 * 10.0) / 1_000_000
    return calls, pico / 10**12, most


def masking() -> tuple[float, float]:
    """Milliseconds to mask three secrets' fragments in 1 MB of prose, and to ``find`` one."""
    from questfoundry.kit.redaction import Fragments

    secret = "sk-proj-Qm81c4dZe7f0xW93hTqB5nR2"
    text = ("the storm rolled over the lighthouse and its keeper watched the sea " * 15_000)[
        :1_000_000
    ]
    fragments = Fragments([secret, secret[::-1], secret.upper()])
    taken = []
    for _ in range(20):
        started = time.perf_counter()
        fragments.mask(text)
        taken.append(time.perf_counter() - started)
    started = time.perf_counter()
    text.find(secret[8:24])
    return sorted(taken)[10] * 1000, (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--asks", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qf-reliability-") as name:
        root = Path(name)
        rows = waits(root)
        width = max(len(row[0]) for row in rows)
        print(f"{'scenario':<{width}}  {'seconds':>8}  exit  last line")
        for label, seconds, code, line in rows:
            print(f"{label:<{width}}  {seconds:>8.2f}  {code:>4}  {line[:90]}")
        calls, spent, most = budget(root, args.processes, args.asks)
        print()
        print(
            f"{args.processes} processes x {args.asks} asks, replies of 8,000 tokens uncapped, "
            f"under $0.50/day: {calls} calls paid, ${spent:.4f} recorded "
            f"(limit + one call's most = ${0.5 + most:.4f})"
        )
        sent, seconds = shared_limit(root)
        print(
            f"4 processes x 5 asks under requests_per_minute: 10 (default limiter): the provider "
            f"saw {sent} requests in {seconds:.1f} s"
        )
    masked, found = masking()
    print(
        f"masking secret fragments in 1 MB: {masked:.1f} ms (median of 20); "
        f"one str.find: {found:.2f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
