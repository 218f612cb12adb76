"""The fake-server base every provider fake builds on, and the provider contract's own guard.

Driven with the standard library's ``http.client`` so the core's tests need no HTTP library.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from questfoundry.testing.fakes import (
    FakeServer,
    Fault,
    RecordedRequest,
    Response,
    estimate_tokens,
    fake_server_fixture,
    ndjson_line,
    split_text,
    sse_event,
)
from questfoundry.testing.fakes.base import FAULT_STATUS, MALFORMED_BODY
from questfoundry.testing.provider_contract import ProviderContract, replaces_standard_test


class EchoServer(FakeServer):
    """A fake with a JSON echo, a streamed route, a path parameter and a route that breaks."""

    def routes(self) -> dict[tuple[str, str], Any]:
        return {
            ("POST", r"/v1/echo"): lambda r: Response(json={"got": r.body, "query": r.query}),
            ("GET", r"/v1/models/(?P<model>[\w.-]+)"): lambda r: Response(json=r.params),
            ("GET", r"/v1/stream"): self.stream,
            ("GET", r"/v1/broken"): self.broken,
        }

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"problem": {"status": status, "text": message}}

    def stream(self, request: RecordedRequest) -> Response:
        return Response(
            stream=(sse_event({"n": n}) for n in range(3)), content_type="text/event-stream"
        )

    def broken(self, request: RecordedRequest) -> Response:
        raise RuntimeError("a bug in a route")


server = fake_server_fixture(EchoServer)


@pytest.fixture
def conn(server: EchoServer) -> Iterator[http.client.HTTPConnection]:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    yield connection
    connection.close()


def call(
    conn: http.client.HTTPConnection, method: str = "POST", path: str = "/v1/echo", body: Any = None
) -> tuple[int, dict[str, str], bytes]:
    payload = json.dumps(body if body is not None else {"hello": "world"}).encode()
    headers = {"Content-Type": "application/json", "X-Custom": "Value"}
    conn.request(method, path, body=payload if method == "POST" else None, headers=headers)
    response = conn.getresponse()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()


# ---------------------------------------------------------------------- serving and recording


def test_request_is_recorded_with_lowercase_headers_query_and_parsed_body(
    server: EchoServer, conn: http.client.HTTPConnection
) -> None:
    status, _, body = call(conn, path="/v1/echo?alt=sse&key=k", body={"a": 1})
    assert status == 200
    assert json.loads(body) == {"got": {"a": 1}, "query": {"alt": "sse", "key": "k"}}
    recorded = server.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/echo")
    assert recorded.query == {"alt": "sse", "key": "k"}
    assert recorded.headers["x-custom"] == "Value"
    assert recorded.body == {"a": 1}
    assert server.served == 1


def test_named_groups_of_a_route_become_request_params(
    server: EchoServer, conn: http.client.HTTPConnection
) -> None:
    status, _, body = call(conn, "GET", "/v1/models/gpt-4o-mini")
    assert status == 200
    assert json.loads(body) == {"model": "gpt-4o-mini"}


def test_body_that_is_not_json_is_recorded_raw(server: EchoServer) -> None:
    host, port = server.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("POST", "/v1/echo", body=b"not json")
    connection.getresponse().read()
    connection.close()
    assert server.requests[-1].body is None
    assert server.requests[-1].raw == b"not json"


def test_unknown_path_is_404_and_wrong_method_is_405_in_the_fakes_error_shape(
    server: EchoServer, conn: http.client.HTTPConnection
) -> None:
    status, _, body = call(conn, path="/v1/nowhere")
    assert status == 404
    assert json.loads(body)["problem"]["status"] == 404
    status, _, _ = call(conn, "GET", "/v1/echo")
    assert status == 405
    assert server.served == 0


def test_a_route_that_raises_answers_500_and_the_server_keeps_serving(
    server: EchoServer, conn: http.client.HTTPConnection
) -> None:
    status, _, body = call(conn, "GET", "/v1/broken")
    assert status == 500
    assert "a bug in a route" in json.loads(body)["problem"]["text"]
    assert call(conn)[0] == 200


def test_stream_items_arrive_in_order_with_chunked_encoding(
    conn: http.client.HTTPConnection,
) -> None:
    status, headers, body = call(conn, "GET", "/v1/stream")
    assert status == 200
    assert headers["transfer-encoding"] == "chunked"
    assert body == b'data: {"n": 0}\n\ndata: {"n": 1}\n\ndata: {"n": 2}\n\n'


def test_connection_is_kept_alive_across_requests(
    server: EchoServer, conn: http.client.HTTPConnection
) -> None:
    call(conn)
    first_socket = conn.sock
    call(conn, "GET", "/v1/stream")
    call(conn)
    assert conn.sock is first_socket, "one TCP connection serves every request"
    assert len(server.requests) == 3


def test_many_concurrent_requests_are_all_served(server: EchoServer) -> None:
    results: list[int] = []

    def one(n: int) -> None:
        host, port = server.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        results.append(call(connection, body={"n": n})[0])
        connection.close()

    threads = [threading.Thread(target=one, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 32
    assert server.served == 32


# ---------------------------------------------------------------------- faults


def test_fault_applies_to_exactly_the_next_requests(
    server: EchoServer, conn: http.client.HTTPConnection
) -> None:
    server.fail_next(Fault.SERVER_ERROR, times=2)
    assert server.pending_faults == 2
    statuses = [call(conn)[0] for _ in range(3)]
    assert statuses == [500, 500, 200]
    assert len(server.requests) == 3
    assert server.served == 1
    assert server.pending_faults == 0


def test_faults_queue_in_the_order_given(
    server: EchoServer, conn: http.client.HTTPConnection
) -> None:
    server.fail_next(Fault.UNAVAILABLE)
    server.fail_next(Fault.BAD_REQUEST)
    assert [call(conn)[0] for _ in range(3)] == [503, 400, 200]


@pytest.mark.parametrize("fault", list(FAULT_STATUS), ids=lambda fault: fault.value)
def test_http_fault_answers_its_status_in_the_providers_error_shape(
    server: EchoServer, conn: http.client.HTTPConnection, fault: Fault
) -> None:
    server.fail_next(fault)
    status, headers, body = call(conn)
    expected_status, message = FAULT_STATUS[fault]
    assert status == expected_status
    assert json.loads(body) == {"problem": {"status": status, "text": message}}
    assert ("retry-after" in headers) is (fault is Fault.RATE_LIMIT)
    assert server.served == 0


@pytest.mark.parametrize(("seconds", "header"), [(1.0, "1"), (0.5, "0.5"), (30, "30")])
def test_rate_limit_sends_retry_after_in_seconds(
    server: EchoServer, conn: http.client.HTTPConnection, seconds: float, header: str
) -> None:
    server.retry_after = seconds
    server.fail_next(Fault.RATE_LIMIT)
    assert call(conn)[1]["retry-after"] == header


def test_malformed_json_fault(server: EchoServer, conn: http.client.HTTPConnection) -> None:
    server.fail_next(Fault.MALFORMED_JSON)
    status, headers, body = call(conn)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert body == MALFORMED_BODY
    with pytest.raises(ValueError):
        json.loads(body)


def test_dropped_connection_gets_no_response_and_the_next_call_works(
    server: EchoServer, conn: http.client.HTTPConnection
) -> None:
    server.fail_next(Fault.DROP_CONNECTION)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        call(conn)
    conn.close()
    assert call(conn)[0] == 200
    assert len(server.requests) == 2
    assert server.served == 1


@pytest.mark.slow
def test_slow_fault_answers_after_slow_seconds() -> None:
    with EchoServer(slow_seconds=0.3) as slow:
        host, port = slow.url.removeprefix("http://").split(":")
        impatient = http.client.HTTPConnection(host, int(port), timeout=0.05)
        slow.fail_next(Fault.SLOW)
        started = time.monotonic()
        with pytest.raises(socket.timeout):
            call(impatient)
        assert time.monotonic() - started < 0.25
        impatient.close()
        patient = http.client.HTTPConnection(host, int(port), timeout=5)
        slow.fail_next(Fault.SLOW)
        started = time.monotonic()
        assert call(patient)[0] == 200
        assert time.monotonic() - started >= 0.3
        patient.close()


def raw_exchange(server: FakeServer, timeout: float = 5) -> socket.socket:
    """A socket that has sent one request to the echo route; the caller reads the reply."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=timeout)
    body = b'{"hello": "world"}'
    sock.sendall(
        b"POST /v1/echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-echoed-0123456789\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    return sock


@pytest.mark.slow
def test_trickle_sends_the_whole_reply_status_line_included_one_byte_at_a_time() -> None:
    with EchoServer(trickle_seconds=0.002) as server:
        server.fail_next(Fault.TRICKLE)
        sock = raw_exchange(server)
        with sock:
            reads: list[bytes] = []
            while chunk := sock.recv(65536):
                reads.append(chunk)
        reply = b"".join(reads)
        assert reply.startswith(b"HTTP/1.1 200 ")
        assert reply.endswith(b'{"got": {"hello": "world"}, "query": {}}')
        assert len(reads) > len(reply) // 2, "the bytes came (nearly) one by one"
        assert server.served == 1


@pytest.mark.slow
def test_never_answer_sends_nothing_and_frees_its_thread_when_the_client_hangs_up() -> None:
    with EchoServer() as server:
        server.fail_next(Fault.NEVER_ANSWER)
        sock = raw_exchange(server, timeout=0.3)
        with pytest.raises(socket.timeout):
            sock.recv(1)
        assert server.open_connections == 1
        sock.close()
        deadline = time.monotonic() + 2
        while server.open_connections and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.open_connections == 0
        assert len(server.requests) == 1 and server.served == 0


def test_huge_reply_streams_its_size_without_a_length(
    server: EchoServer, conn: http.client.HTTPConnection
) -> None:
    server.huge_bytes = 3 * 65536 + 5
    server.fail_next(Fault.HUGE_REPLY)
    status, headers, body = call(conn)
    assert status == 200
    assert "content-length" not in headers and headers["transfer-encoding"] == "chunked"
    assert len(body) == server.huge_bytes


def test_echo_credentials_answers_401_quoting_the_keys_it_was_sent(server: EchoServer) -> None:
    server.fail_next(Fault.ECHO_CREDENTIALS)
    with raw_exchange(server) as sock:
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 401 ")
    assert b"authorization: Bearer sk-echoed-0123456789" in reply


def test_latency_delays_every_reply() -> None:
    with EchoServer(latency=0.05) as lagging:
        host, port = lagging.url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        started = time.monotonic()
        call(connection)
        call(connection)
        assert time.monotonic() - started >= 0.1
        connection.close()


def test_reset_forgets_requests_served_count_and_pending_faults(
    server: EchoServer, conn: http.client.HTTPConnection
) -> None:
    call(conn)
    server.fail_next(Fault.SERVER_ERROR, times=3)
    server.reset()
    assert (server.requests, server.served, server.pending_faults) == ([], 0, 0)
    assert call(conn)[0] == 200


# ---------------------------------------------------------------------- life cycle


def test_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = EchoServer().url


def test_each_server_gets_its_own_free_port() -> None:
    with EchoServer() as one, EchoServer() as two:
        assert one.url.startswith("http://127.0.0.1:")
        assert one.url != two.url


def test_stop_releases_a_held_slow_reply_and_cuts_kept_alive_connections() -> None:
    slow = EchoServer(slow_seconds=30).start()
    host, port = slow.url.removeprefix("http://").split(":")
    idle = http.client.HTTPConnection(host, int(port), timeout=5)
    call(idle)
    outcome: list[str] = []

    def wait_for_slow_reply() -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            outcome.append(str(call(connection)[0]))
        except (OSError, http.client.HTTPException) as error:
            outcome.append(type(error).__name__)

    slow.fail_next(Fault.SLOW)
    waiter = threading.Thread(target=wait_for_slow_reply)
    waiter.start()
    while not slow.requests[1:]:
        time.sleep(0.005)  # until the slow request has arrived, not to let time pass
    started = time.monotonic()
    slow.stop()
    waiter.join(timeout=5)
    assert not waiter.is_alive()
    assert time.monotonic() - started < 2
    assert outcome, "the slow request ended instead of waiting 30 s"
    with pytest.raises((OSError, http.client.HTTPException)):
        call(idle)
    slow.stop()  # stopping twice is harmless


# ---------------------------------------------------------------------- helpers for fakes


def test_estimate_tokens_is_about_four_characters_a_token() -> None:
    assert estimate_tokens("") == 1
    assert estimate_tokens("abcd") == 1
    assert estimate_tokens("a" * 400) == 100


@pytest.mark.parametrize("text", ["", "a", "hello there", "x" * 101])
def test_split_text_pieces_join_back_into_the_text(text: str) -> None:
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert len(pieces) <= 4
    assert all(pieces)


def test_sse_and_ndjson_framing() -> None:
    assert sse_event({"a": 1}) == b'data: {"a": 1}\n\n'
    assert sse_event("[DONE]") == b"data: [DONE]\n\n"
    assert ndjson_line({"done": True}) == b'{"done": true}\n'


# ---------------------------------------------------------------------- the contract's guard


def test_overriding_a_standard_contract_test_silently_is_refused() -> None:
    with pytest.raises(TypeError, match="test_timeout_is_honoured"):

        class Quiet(ProviderContract):
            def test_timeout_is_honoured(self) -> None:  # type: ignore[override]
                pass


def test_overriding_a_standard_contract_test_on_purpose_is_allowed() -> None:
    class Deliberate(ProviderContract):
        @replaces_standard_test("this service has no timeout setting")
        def test_timeout_is_honoured(self) -> None:  # type: ignore[override]
            pass

    assert "test_timeout_is_honoured" in vars(Deliberate)


def test_a_contract_subclass_may_add_its_own_tests() -> None:
    class Extended(ProviderContract):
        def test_something_specific(self) -> None:
            pass

    assert hasattr(Extended, "test_something_specific")
