"""A Redis outage costs the limiter one warning per process, however many limiter objects,
threads and calls meet it; a later outage is warned about again."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import pytest
from questfoundry_limiter_redis.plugin import make_redis_limiter

from questfoundry.kit import BackendContext, Rate
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.redis import RedisServer

LOGGER = "questfoundry.limiter.redis"
RATES = [Rate("global/requests", 100, 60)]
ONE = {"global/requests": 1}

pytestmark = pytest.mark.redis


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= 30]


def test_an_outage_warns_once_per_process_however_many_limiters_meet_it(
    redis_server: RedisServer, backend_context: BackendContext, caplog: pytest.LogCaptureFixture
) -> None:
    settings = {"redis_url": redis_server.url, "rates": RATES}
    limiters = [make_redis_limiter(settings, backend_context) for _ in range(3)]
    redis_server.stop()
    with caplog.at_level(logging.INFO, LOGGER), ThreadPoolExecutor(9) as calls:
        list(calls.map(lambda limiter: limiter.acquire(ONE), limiters * 3))
    assert len(warnings(caplog)) == 1, warnings(caplog)
    for limiter in limiters:
        limiter.close()


@pytest.mark.slow
def test_a_new_outage_after_redis_came_back_is_warned_about_again(
    redis_server: RedisServer,
    backend_context: BackendContext,
    fake_clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    limiter = make_redis_limiter({"redis_url": redis_server.url, "rates": RATES}, backend_context)
    with caplog.at_level(logging.INFO, LOGGER):
        redis_server.stop()
        limiter.acquire(ONE)
        redis_server.start()
        fake_clock.advance(2)  # past the breaker
        limiter.acquire(ONE)
        redis_server.stop()
        fake_clock.advance(2)
        limiter.acquire(ONE)
    assert len(warnings(caplog)) == 2
    assert any("answers again" in r.getMessage() for r in caplog.records)
    limiter.close()
