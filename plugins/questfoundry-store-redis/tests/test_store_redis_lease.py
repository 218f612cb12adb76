"""One run at a time on the ``redis`` store: two processes' runs of one project take turns, and
the lease of a run that stops renewing it (its process killed) runs out by itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from questfoundry_store_redis import plugin as store_plugin

from questfoundry.kit import StateError
from questfoundry.testing.app import Config, Showrunner, get_plugin_manager
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

pytestmark = [pytest.mark.redis, pytest.mark.soak]  # a process started, a lease let run out: ~4 s


def config(project: Path, redis_url: str, redis_prefix: str) -> Config:
    data: dict[str, Any] = {
        "providers": {"text": {"default": "scripted", "scripted": {"model": "m"}}},
        "caching": {"enabled": False},
        "state": {"backend": "redis", "redis_url": redis_url, "key_prefix": redis_prefix},
    }
    return Config(data, None, project, frozenset())


def showrunner(project: Path, redis_url: str, redis_prefix: str) -> Showrunner:
    plugins = [scripted_plugin(ScriptedProvider()), ("questfoundry-store-redis", store_plugin)]
    manager = get_plugin_manager(entry_points=False, plugins=plugins)
    return Showrunner.from_config(config(project, redis_url, redis_prefix), manager)


#: another process: take the project's lease as a run would, say so, then hang until killed
_HOLDER = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from questfoundry.kit import BackendContext, Clock
    from questfoundry.testing.app import ProjectLease
    from questfoundry_store_redis.plugin import make_redis_store

    settings = {"redis_url": sys.argv[1], "key_prefix": sys.argv[2], "lease_seconds": 1}
    store = make_redis_store(settings, BackendContext(Path(sys.argv[3]), "leased"))

    async def hold():
        async with ProjectLease(store, "story_spark", clock=Clock()) as lease:
            await lease.name("held-elsewhere")
            print("held", flush=True)
            await asyncio.sleep(120)

    asyncio.run(hold())
    """
)


def test_a_run_of_another_process_is_named_and_its_lease_runs_out_when_it_is_killed(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    project = tmp_path / "leased" / ".questfoundry"
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, redis_url, redis_prefix, str(project)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        time.sleep(1.2)  # past one lease length: the holder's renewals keep it
        with showrunner(project, redis_url, redis_prefix) as runner:
            with pytest.raises(StateError, match=r"run held-elsewhere of story_spark \(pid "):
                runner.run("story_spark", sections=2)
            holder.kill()
            holder.wait(10)
            started = time.monotonic()
            report = runner.run("story_spark", sections=2, wait=True)
        assert report.totals.calls > 0
        assert time.monotonic() - started < 1.0 + 2.0  # the lease's second, and the run
    finally:
        holder.kill()
        holder.wait(10)
