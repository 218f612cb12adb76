"""Redis for tests: the shared server's address, a key prefix per test, and a server of your own.

Tests of Redis backends talk to a real Redis server:

- ``redis_url`` (fixture): ``QUESTFOUNDRY_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/15``.
  When nothing answers there the test is skipped — except under ``CI=true``, where it fails.
- ``redis_prefix`` (fixture): a key prefix no other test (nor xdist worker) uses; every key under
  it is deleted when the test ends.
- ``redis_client`` (fixture): a plain redis-py client of the test's own on ``redis_url``, to look
  at what a backend wrote as another program would.
- ``redis_server`` (fixture): a private ``redis-server`` the test may stop, restart, freeze
  (``SIGSTOP``) and thaw, for outage tests that must not disturb the shared server.
- ``silent_redis`` (fixture): a :class:`SilentServer`, a port that takes connections and never
  answers (a frozen Redis without a server), counting the connections made to it.

redis-py is imported lazily: the core does not depend on it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from questfoundry.kit import redis_scan_pattern

URL_ENV = "QUESTFOUNDRY_TEST_REDIS_URL"
DEFAULT_URL = "redis://127.0.0.1:6379/15"


def test_redis_url() -> str:
    """The Redis the tests use."""
    return os.environ.get(URL_ENV) or DEFAULT_URL


test_redis_url.__test__ = False  # type: ignore[attr-defined]  # not a test, whatever its name


def unavailable(reason: str) -> None:
    """Skip the test, or fail it under ``CI=true`` (CI must never skip Redis tests silently)."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"Redis is required under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


def client(url: str, **options: Any) -> Any:
    """A redis-py client for ``url`` with short timeouts (tests never hang on a dead server)."""
    import redis

    options.setdefault("socket_timeout", 2.0)
    options.setdefault("socket_connect_timeout", 2.0)
    return redis.Redis.from_url(url, **options)


def delete_prefix(redis_client: Any, prefix: str) -> int:
    """Delete every key starting with ``prefix`` (SCAN, never KEYS); return how many."""
    removed = 0
    batch: list[Any] = []
    for key in redis_client.scan_iter(match=redis_scan_pattern(prefix), count=1000):
        batch.append(key)
        if len(batch) >= 500:
            removed += redis_client.delete(*batch)
            batch.clear()
    if batch:
        removed += redis_client.delete(*batch)
    return removed


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The shared test Redis's URL, checked once per session; see the module docstring."""
    url = test_redis_url()
    try:
        import redis
    except ImportError:  # pragma: no cover - every Redis plugin depends on redis-py
        unavailable("redis-py is not installed")
    try:
        client(url, socket_timeout=1.0, socket_connect_timeout=1.0).ping()
    except redis.RedisError as exc:
        unavailable(f"no Redis answers at {url} ({exc}); set {URL_ENV}")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    prefix = f"qftest:{worker}:{uuid.uuid4().hex[:10]}:"
    yield prefix
    conn = client(redis_url)
    try:
        delete_prefix(conn, prefix)
    finally:
        conn.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Any]:
    """A plain redis-py client on the shared test Redis (see the module docstring)."""
    conn = client(redis_url)
    yield conn
    conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A ``redis-server`` of the test's own on a free port, keeping nothing on disk."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            unavailable("redis-server is not on PATH")
        self.binary = str(binary)
        self.workdir = workdir
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart) the server on its port and wait until it answers."""
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server (its data is gone: it keeps nothing on disk)."""
        if self.process is None:
            return
        self.thaw()
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def freeze(self) -> None:
        """``SIGSTOP``: the server keeps its sockets open but answers nothing."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """``SIGCONT``: the frozen server answers again."""
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, started Redis server (see :class:`RedisServer`); stopped afterwards."""
    server = RedisServer(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class SilentServer:
    """A TCP port that takes connections and never answers (a frozen Redis), counting them.

    Nothing calls ``accept`` until :meth:`connections`: the kernel completes each connection
    into the listening queue, so the count is exact whenever it is read, with no thread to race.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.accepted: list[socket.socket] = []

    def connections(self) -> int:
        with contextlib.suppress(BlockingIOError):
            while True:
                self.accepted.append(self.sock.accept()[0])
        return len(self.accepted)

    def close(self) -> None:
        for conn in self.accepted:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_redis() -> Iterator[SilentServer]:
    """A :class:`SilentServer`, closed afterwards."""
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()
