"""A private Redis that asks for a password, for the tests that keep passwords out of sight."""

from __future__ import annotations

import pytest

from questfoundry.testing.redis import RedisServer, client


@pytest.fixture
def redis_password() -> str:
    return "s3cret-Pa55word"


@pytest.fixture
def locked_server(redis_server: RedisServer, redis_password: str) -> RedisServer:
    """The test's private server, answering only clients that give ``redis_password``."""
    admin = client(redis_server.url)
    try:
        admin.config_set("requirepass", redis_password)
    finally:
        admin.close()
    return redis_server
