"""Calls in flight survive ``kill -9``: the ledger counts every call the provider served.

A worker process calls the fake OpenAI server through the real ``openai`` SDK from several
threads, every call a cache miss, the server taking a moment over each so that calls are in flight
when the worker is killed. The server counts the replies it sent (``served``, each one paid at a
real provider); the ledger opened after the kill settles the worker's journal and must count at
least that many calls, and no more than the requests the server saw plus the calls that had only
written their intent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from questfoundry.config import Config
from questfoundry.contracts.backends import BackendContext
from questfoundry.ledger import open_ledger
from questfoundry.testing.fakes import FakeOpenAI

pytestmark = pytest.mark.slow

THREADS = 8

WORKER = textwrap.dedent(
    """
    import sys, threading
    from pathlib import Path
    from questfoundry.config import Config
    from questfoundry.contracts.records import CacheMode, Request
    from questfoundry.runtime import open_gateway
    from questfoundry.registry import get_plugin_manager

    url, root, threads = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    openai = {"model": "gpt-4o-mini", "api_key": "sk-test", "base_url": url}
    data = {"providers": {"text": {"default": "openai", "openai": openai}}}
    gateway = open_gateway(Config(data, None, root / ".questfoundry", frozenset()),
                                  get_plugin_manager())

    def work(number):
        for call in range(10_000):
            text = f"worker {number}, call {call}: describe the lamp room"
            gateway.generate(Request(messages=[{"role": "user", "content": text}],
                                     params={"max_tokens": 40}, cache=CacheMode.OFF))

    for number in range(threads):
        threading.Thread(target=work, args=(number,), daemon=True).start()
    print("running", flush=True)
    threading.Event().wait()
    """
)


def ledger_calls(root: Path) -> tuple[int, int]:
    """Calls and unconfirmed calls the project's ledger counts (settling what was left)."""
    config = Config({}, None, root / ".questfoundry", frozenset())
    with open_ledger(config, BackendContext(config.project_dir)) as ledger:
        rows = ledger.report()
    return sum(row.calls for row in rows), sum(row.unconfirmed for row in rows)


def kill_mid_run(root: Path, served_before_kill: int) -> tuple[int, int, int, int]:
    """Run a worker until the server has served that many calls, kill -9 it; what was served,
    asked for, and what the ledger then counts."""
    with FakeOpenAI(latency=0.02) as server:
        worker = subprocess.Popen(
            [sys.executable, "-c", WORKER, server.base_url, str(root), str(THREADS)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "running"
        deadline = time.monotonic() + 60
        while server.served < served_before_kill and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        time.sleep(0.1)  # replies the server was still sending are counted as served
        served, asked = server.served, len(server.requests)
    calls, unconfirmed = ledger_calls(root)
    return served, asked, calls, unconfirmed


def test_after_kill_9_the_ledger_counts_every_call_the_provider_served(tmp_path: Path) -> None:
    served, asked, calls, unconfirmed = kill_mid_run(tmp_path, 40)

    assert served >= 40
    assert served <= calls <= asked + THREADS
    assert unconfirmed <= THREADS  # at most one call in flight per thread


@pytest.mark.soak
@pytest.mark.parametrize("run", range(12))
def test_kill_9_at_twelve_moments_never_loses_a_served_call(tmp_path: Path, run: int) -> None:
    served, asked, calls, _ = kill_mid_run(tmp_path, 10 + 17 * run)

    assert served <= calls <= asked + THREADS
