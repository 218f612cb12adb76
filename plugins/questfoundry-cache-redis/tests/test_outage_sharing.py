"""A Redis outage seen by the processes of one machine: one warning per process and backend, and
the breaker's open state shared through a small file in the project's ``.questfoundry/``, so a
second short process in the same outage skips Redis at once instead of paying its timeouts."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from questfoundry_cache_redis.breaker import Breaker
from questfoundry_cache_redis.cache import RedisCache
from questfoundry_cache_redis.plugin import make_redis_cache

from questfoundry.kit import BackendContext
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.redis import RedisServer, SilentServer

LOGGER = "questfoundry.cache.redis"
#: a silent Redis costs each call this timeout: short, so the tests are quick
SILENCE = {"breaker_failures": 3, "socket_timeout": 0.03}


def cache_on(url: str, context: BackendContext, namespace: str = "test") -> RedisCache:
    """A cache as a process of the project would build it."""
    here = BackendContext(context.project_dir, namespace, context.clock)
    return make_redis_cache({"redis_url": url, **SILENCE}, here)


def a_miss_as_ask_makes_it(cache: RedisCache) -> None:
    """What one call that misses asks of the cache: a read, the key's lock, a store."""
    cache.get("k")
    token = cache.lock("k", 30)
    cache.set("k", b"v")
    cache.unlock("k", token or "")


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_second_process_in_the_same_outage_skips_redis_at_once(
    silent_redis: SilentServer, backend_context: BackendContext
) -> None:
    first = cache_on(silent_redis.url, backend_context)
    a_miss_as_ask_makes_it(first)  # three timeouts: the breaker opens
    first.close()
    reached = silent_redis.connections()
    second = cache_on(silent_redis.url, backend_context)  # the next `ask`, same project
    started = time.perf_counter()
    a_miss_as_ask_makes_it(second)
    assert time.perf_counter() - started < 0.05
    assert silent_redis.connections() == reached, "the second never went to Redis"
    second.close()


def test_the_shared_state_is_per_redis_and_namespace(
    silent_redis: SilentServer, backend_context: BackendContext
) -> None:
    first = cache_on(silent_redis.url, backend_context)
    a_miss_as_ask_makes_it(first)
    other_project = cache_on(silent_redis.url, backend_context, namespace="other")
    other_project.get("k")
    assert silent_redis.connections() > 1, "another project's cache asks Redis itself"
    first.close()
    other_project.close()


def test_after_the_cooldown_one_probe_closes_the_breaker_for_every_process(
    backend_context: BackendContext, fake_clock: FakeClock
) -> None:
    shared = backend_context.project_dir / "breaker"
    mine = Breaker(2, 5.0, fake_clock, shared=shared, name="redis://x")
    theirs = Breaker(2, 5.0, fake_clock, shared=shared, name="redis://x")
    assert [mine.failed(), mine.failed()] == [False, True]
    assert theirs.allow() is False
    fake_clock.advance(5)
    assert theirs.allow() is True  # the probe, claimed for everyone
    assert mine.allow() is False
    theirs.succeeded()
    assert mine.allow() and theirs.allow()


def test_a_stale_or_foreign_state_file_opens_nothing(
    backend_context: BackendContext, fake_clock: FakeClock
) -> None:
    shared = backend_context.project_dir / "breaker"
    other = Breaker(1, 5.0, fake_clock, shared=shared, name="redis://elsewhere")
    other.failed()
    assert Breaker(1, 5.0, fake_clock, shared=shared, name="redis://here").allow()
    shared.write_text("not json", encoding="utf-8")
    assert Breaker(1, 5.0, fake_clock, shared=shared, name="redis://elsewhere").allow()


def test_an_outage_warns_once_per_process_however_many_caches_and_calls_meet_it(
    silent_redis: SilentServer, backend_context: BackendContext, caplog: pytest.LogCaptureFixture
) -> None:
    caches = [cache_on(silent_redis.url, backend_context) for _ in range(2)]
    with caplog.at_level(logging.WARNING, LOGGER), ThreadPoolExecutor(8) as calls:
        list(calls.map(a_miss_as_ask_makes_it, caches * 4))  # eight calls in flight at once
    assert len(warnings(caplog)) == 1, warnings(caplog)
    for cache in caches:
        cache.close()


@pytest.mark.slow
@pytest.mark.redis
def test_a_new_outage_after_redis_came_back_is_warned_about_again(
    redis_server: RedisServer,
    backend_context: BackendContext,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = {"redis_url": redis_server.url, "breaker_failures": 1, "socket_timeout": 0.5}
    cache = make_redis_cache(settings, backend_context)
    with caplog.at_level(logging.INFO, LOGGER):
        redis_server.stop()
        cache.get("k")
        redis_server.start()
        fake_clock.advance(5)
        cache.get("k")  # the probe answers
        redis_server.stop()
        fake_clock.advance(5)
        cache.get("k")
    assert len(warnings(caplog)) == 2
    assert any("answers again" in r.getMessage() for r in caplog.records)
    cache.close()


_SECOND = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from questfoundry.kit import BackendContext
    from questfoundry_cache_redis.plugin import make_redis_cache
    cache = make_redis_cache({"redis_url": sys.argv[2]}, BackendContext(Path(sys.argv[1]), "test"))
    started = time.perf_counter()
    cache.get("k"); cache.set("k", b"v")
    print(time.perf_counter() - started)
    """
)


@pytest.mark.slow
def test_the_open_state_reaches_another_real_process(
    silent_redis: SilentServer, tmp_path: Path
) -> None:
    project = tmp_path / ".questfoundry"
    first = make_redis_cache(
        {"redis_url": silent_redis.url, **SILENCE}, BackendContext(project, "test")
    )
    a_miss_as_ask_makes_it(first)
    first.close()
    reached = silent_redis.connections()
    done = subprocess.run(
        [sys.executable, "-c", _SECOND, str(project), silent_redis.url],
        capture_output=True,
        text=True,
        check=True,
    )
    assert float(done.stdout) < 0.05
    assert silent_redis.connections() == reached
    assert "cannot be read" not in done.stderr  # it did not try: no timeout to report
