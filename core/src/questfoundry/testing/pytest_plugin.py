"""Fixtures QuestFoundry ships for plugin authors' tests (loaded by pytest automatically)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from questfoundry.contracts.backends import BackendContext
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.faces import FACES, Face


def pytest_configure(config: pytest.Config) -> None:
    """The marker the shipped contract suites use, so a plugin's own run with
    ``--strict-markers`` accepts it (deselect with ``-m "not slow"``)."""
    config.addinivalue_line("markers", "slow: takes 0.3 s or more")


@pytest.fixture
def fake_clock() -> FakeClock:
    """A clock whose sleeps return at once and advance time."""
    return FakeClock()


@pytest.fixture
def backend_context(tmp_path: Path, fake_clock: FakeClock) -> Iterator[BackendContext]:
    """A context for building backends in a temporary project, with the fake clock."""
    project = tmp_path / ".questfoundry"
    project.mkdir()
    yield BackendContext(project_dir=project, namespace="test", clock=fake_clock)


@pytest.fixture(params=FACES, ids=lambda face: face.name)
def gateway_face(request: pytest.FixtureRequest) -> Face:
    """Each test using it runs twice: through the sync and through the async gateway."""
    face: Face = request.param
    return face


# Redis fixtures (redis_url, redis_prefix, redis_server, silent_redis): see
# questfoundry.testing.redis
from questfoundry.testing.redis import (  # noqa: E402
    redis_client,
    redis_prefix,
    redis_server,
    redis_url,
    silent_redis,
)

__all__ = [
    "backend_context",
    "fake_clock",
    "gateway_face",
    "redis_client",
    "redis_prefix",
    "redis_server",
    "redis_url",
    "silent_redis",
]
