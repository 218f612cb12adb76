"""The deadline-and-size transports of :mod:`questfoundry.kit.transport`, driven by plain httpx
clients.

The provider contract checks them through each SDK; these tests pin the policy itself: what a
stream may do that a whole reply may not, the size cap, both httpx flavours, the lazy import.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import httpx2
import pytest

from questfoundry.contracts.errors import (
    ConfigError,
    NonRetriableProviderError,
    RetriableProviderError,
)
from questfoundry.kit import transport as http
from questfoundry.testing.fakes import FakeServer, Fault, Response
from questfoundry.testing.fakes.base import Handler, RecordedRequest

FLAVOURS = {"httpx": httpx, "httpx2": httpx2}
MiB = 1024 * 1024


class Pieces(FakeServer):
    """``/pieces``: twelve chunks 60 ms apart; ``/big``: 2 MiB with its length."""

    def routes(self) -> dict[tuple[str, str], Handler]:
        return {("GET", r"/pieces"): self.pieces, ("GET", r"/big"): self.big}

    def pieces(self, request: RecordedRequest) -> Response:
        def chunks() -> Iterator[bytes]:
            for n in range(12):
                self._hold(0.06)
                yield b"piece %d\n" % n

        return Response(stream=chunks(), content_type="text/plain")

    def big(self, request: RecordedRequest) -> Response:
        return Response(body=b"x" * (2 * MiB))


@pytest.fixture
def server() -> Iterator[Pieces]:
    with Pieces() as server:
        yield server


def client(flavour: str, **options: Any) -> Any:
    return FLAVOURS[flavour].Client(transport=http.sync_transport(flavour, **options))


@pytest.mark.slow
@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_stream_outlives_the_deadline_while_its_chunks_keep_coming(
    server: Pieces, flavour: str
) -> None:
    # a wide margin between the gaps (60 ms) and the deadline, so a busy machine cannot close it
    with client(flavour, timeout=30) as session, http.attempt(0.5, stream=True):
        reply = session.get(f"{server.url}/pieces")
    assert reply.text.count("piece") == 12, "0.72 s in all, never 0.5 s between two chunks"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_whole_reply_must_be_complete_by_the_deadline(server: Pieces, flavour: str) -> None:
    started = time.monotonic()
    with (
        client(flavour, timeout=30) as session,
        http.attempt(0.2),
        pytest.raises(http.DeadlineExceeded, match=r"no complete reply within 0\.2 s"),
    ):
        session.get(f"{server.url}/pieces")
    assert time.monotonic() - started < 0.2 + 0.3


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_the_transports_own_timeout_applies_outside_an_attempt(
    server: Pieces, flavour: str
) -> None:
    server.fail_next(Fault.NEVER_ANSWER)
    started = time.monotonic()
    with client(flavour, timeout=0.2) as session, pytest.raises(http.DeadlineExceeded):
        session.get(f"{server.url}/pieces")
    assert time.monotonic() - started < 0.2 + 0.3


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_reply_announcing_more_than_the_cap_is_refused(server: Pieces, flavour: str) -> None:
    with (
        client(flavour, timeout=5, max_reply_bytes=MiB) as session,
        pytest.raises(http.ReplyTooLarge, match="1 MiB"),
    ):
        session.get(f"{server.url}/big")


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_a_reply_under_the_cap_is_read_whole(server: Pieces, flavour: str) -> None:
    with client(flavour, timeout=5, max_reply_bytes=3 * MiB) as session:
        assert len(session.get(f"{server.url}/big").content) == 2 * MiB


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_async_transport_serves_successive_event_loops(server: Pieces, flavour: str) -> None:
    session = FLAVOURS[flavour].AsyncClient(transport=http.async_transport(flavour, timeout=5))

    async def fetch() -> int:
        return len((await session.get(f"{server.url}/big")).content)

    assert [asyncio.run(fetch()) for _ in range(3)] == [2 * MiB] * 3
    assert all_connections_close(server), "each loop closed its pool as it ended"


def all_connections_close(server: FakeServer) -> bool:
    """True once the fake sees every connection closed (a hang-up reaches it a moment later)."""
    deadline = time.monotonic() + 2
    while server.open_connections and time.monotonic() < deadline:
        time.sleep(0.01)
    return server.open_connections == 0


def test_transport_failures_become_provider_errors_through_any_chain() -> None:
    try:
        try:
            raise http.DeadlineExceeded(3)
        except http.DeadlineExceeded as inner:
            raise RuntimeError("the SDK's wrapper") from inner
    except RuntimeError as wrapped:
        error = http.provider_error(wrapped, "openai")
    assert isinstance(error, RetriableProviderError)
    assert str(error) == "openai: no complete reply within 3 s"
    too_big = http.provider_error(http.ReplyTooLarge(32 * MiB), "gemini")
    assert isinstance(too_big, NonRetriableProviderError)
    assert http.provider_error(ValueError("other"), "openai") is None


def test_max_reply_mb_is_read_in_mebibytes_and_checked() -> None:
    path = "providers.text.openai"
    assert http.max_reply_bytes({}, path) == 32 * MiB
    assert http.max_reply_bytes({"max_reply_mb": 0.5}, path) == MiB // 2
    with pytest.raises(ConfigError, match=r"providers\.text\.openai\.max_reply_mb"):
        http.max_reply_bytes({"max_reply_mb": 0}, path)


def test_flavours_are_told_apart_and_unknown_ones_refused() -> None:
    assert http.flavour_of(httpx.Client) == "httpx"
    assert http.flavour_of(httpx2.AsyncClient) == "httpx2"
    with pytest.raises(ValueError, match="unknown httpx flavour"):
        http.sync_transport("requests", timeout=1)


@pytest.mark.slow
def test_importing_questfoundry_and_its_helpers_imports_no_httpx() -> None:
    code = (
        "import sys, questfoundry, questfoundry.kit.aio, questfoundry.kit.redaction; "
        "print(sorted(m for m in ('httpx', 'httpx2', 'httpcore') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_requests_go_through_the_proxy_the_environment_names(
    server: Pieces, flavour: str, no_proxies: pytest.MonkeyPatch
) -> None:
    no_proxies.setenv("HTTP_PROXY", server.url)  # the fake serves absolute-form requests too
    with client(flavour, timeout=5) as session:
        reply = session.get("http://provider.invalid/big")
    assert len(reply.content) == 2 * MiB
    assert server.requests[-1].headers["host"] == "provider.invalid"


@pytest.mark.parametrize("flavour", FLAVOURS)
def test_async_requests_go_through_the_proxy_too(
    server: Pieces, flavour: str, no_proxies: pytest.MonkeyPatch
) -> None:
    no_proxies.setenv("HTTP_PROXY", server.url)
    session = FLAVOURS[flavour].AsyncClient(transport=http.async_transport(flavour, timeout=5))

    async def fetch() -> int:
        return len((await session.get("http://provider.invalid/big")).content)

    assert asyncio.run(fetch()) == 2 * MiB


def test_no_proxy_exempts_its_hosts_and_domains(
    server: Pieces, no_proxies: pytest.MonkeyPatch
) -> None:
    no_proxies.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    no_proxies.setenv("NO_PROXY", "localhost, .example.com,127.0.0.1")
    with client("httpx", timeout=5) as session:
        assert len(session.get(f"{server.url}/big").content) == 2 * MiB
