"""The HTTP machinery shared by every fake provider server: routing, recording, fault injection.

A fake server is a real HTTP/1.1 server on 127.0.0.1 (a free port), so tests drive the real SDKs
over real sockets and nothing patches an SDK. Connections are kept alive, so a pooled SDK client
pays for one TCP handshake, not one per call. Standard library only: the demo serves the OpenAI
fake at run time.

A provider's fake subclasses :class:`FakeServer` and supplies :meth:`FakeServer.routes` (what it
answers) and :meth:`FakeServer.error_body` (its documented error JSON). Everything else — faults,
latency, the request log, the served count — lives here::

    with FakeOpenAI() as server:
        server.fail_next(Fault.RATE_LIMIT, times=2)   # the next two requests get 429
        ...
        assert len(server.requests) == 3 and server.served == 1
"""

from __future__ import annotations

import contextlib
import enum
import io
import json
import logging
import math
import re
import select
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

S = TypeVar("S", bound="FakeServer")


class Fault(enum.Enum):
    """A failure the server can inject instead of its normal reply."""

    RATE_LIMIT = "rate_limit"  #: 429 with a ``Retry-After`` header
    SERVER_ERROR = "server_error"  #: 500
    UNAVAILABLE = "unavailable"  #: 503
    MALFORMED_JSON = "malformed_json"  #: 200 whose body is not valid JSON
    DROP_CONNECTION = "drop_connection"  #: the socket is closed without any response
    SLOW = "slow"  #: the normal reply, sent after ``slow_seconds`` (past the client's timeout)
    UNAUTHORIZED = "unauthorized"  #: 401
    FORBIDDEN = "forbidden"  #: 403
    NOT_FOUND = "not_found"  #: 404
    BAD_REQUEST = "bad_request"  #: 400
    #: the normal reply, status line and headers included, one byte every ``trickle_seconds``
    TRICKLE = "trickle"
    NEVER_ANSWER = (
        "never_answer"  #: the request is read, then nothing is sent until the client hangs up
    )
    #: a 200 of ``huge_bytes`` (chunked, no length announced), produced as it is sent
    HUGE_REPLY = "huge_reply"
    #: 401 whose message echoes the request's credentials, as a careless proxy does
    ECHO_CREDENTIALS = "echo_credentials"


#: status code and message of each fault answered with an HTTP error
FAULT_STATUS: dict[Fault, tuple[int, str]] = {
    Fault.RATE_LIMIT: (429, "Rate limit reached; please retry later."),
    Fault.SERVER_ERROR: (500, "The server had an error while processing your request."),
    Fault.UNAVAILABLE: (503, "The engine is currently overloaded; please try again later."),
    Fault.UNAUTHORIZED: (401, "Incorrect API key provided."),
    Fault.FORBIDDEN: (403, "You are not allowed to access this resource."),
    Fault.NOT_FOUND: (404, "The model does not exist or you do not have access to it."),
    Fault.BAD_REQUEST: (400, "Invalid request: a parameter is not valid."),
}

MALFORMED_BODY = b'{"id": "truncated", "choices": [{"index": 0, "message": {"content": "'
#: request headers that carry an API key, echoed back by :attr:`Fault.ECHO_CREDENTIALS`
CREDENTIAL_HEADERS = ("authorization", "x-goog-api-key", "api-key")
#: the faults answered by the route's normal reply, only late or slowly
_LATE_FAULTS = frozenset({Fault.SLOW, Fault.TRICKLE})


@dataclass
class RecordedRequest:
    """One request the server received. ``body`` is the parsed JSON, or None when it was not JSON.

    ``params`` holds the named groups of the route's path pattern (e.g. a model name in the path).
    ``model``, ``temperature`` and ``response_schema`` (the JSON Schema of a structured-output
    request) are what the request asked for, read from the provider's wire format by
    :meth:`FakeServer.describe`; None when the request did not say.
    """

    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    raw: bytes = b""
    params: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    temperature: float | None = None
    response_schema: Any = None

    def note(self, model: Any, temperature: Any, response_schema: Any) -> None:
        """Record what the request asked for, keeping only values of the right type."""
        self.model = model if isinstance(model, str) else None
        self.temperature = number_or_none(temperature)
        self.response_schema = response_schema if isinstance(response_schema, dict) else None


@dataclass
class Response:
    """What a route answers.

    ``json`` is serialised as the body; ``body`` gives raw bytes instead. ``stream`` items are
    written and flushed one by one as they are produced (chunked transfer encoding), so a client
    sees them arrive as a real streaming API sends them.
    """

    status: int = 200
    json: Any = None
    stream: Iterable[bytes] | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


Handler = Callable[[RecordedRequest], Response]


class FakeServer:
    """A fake provider API on 127.0.0.1; subclasses implement :meth:`routes` and :meth:`error_body`.

    ``latency`` seconds are waited before every reply; ``retry_after`` is the ``Retry-After`` header
    of an injected 429 (seconds, or a string sent as it is); ``slow_seconds`` is how long a
    :attr:`Fault.SLOW` reply is held back; ``trickle_seconds`` the pause between the bytes of a
    :attr:`Fault.TRICKLE` reply;
    ``huge_bytes`` the size of a :attr:`Fault.HUGE_REPLY` body.
    ``host`` and ``port`` are where it listens (port 0: a free one).
    ``requests`` records every request received, ``served`` counts successful (2xx) replies.
    """

    def __init__(
        self,
        *,
        latency: float = 0.0,
        retry_after: float | str = 1.0,
        slow_seconds: float = 2.5,
        trickle_seconds: float = 1.0,
        huge_bytes: int = 200 * 1024 * 1024,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.host = host
        self.port = port
        self.latency = latency
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.trickle_seconds = trickle_seconds
        self.huge_bytes = huge_bytes
        self.requests: list[RecordedRequest] = []
        self.served = 0
        self._faults: deque[Fault] = deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    # ------------------------------------------------------------------ for subclasses

    def routes(self) -> dict[tuple[str, str], Handler]:
        """``{(method, path regex): handler}``; the regex must match the whole path."""
        return {}

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        """The provider's documented error JSON for ``status``; override with the real shape."""
        return {"error": {"code": status, "message": message}}

    def describe(self, request: RecordedRequest) -> None:
        """Fill ``request.model``, ``temperature`` and ``response_schema`` from its body (with
        :meth:`RecordedRequest.note` and :func:`field_at`: a malformed body must not raise)."""

    # ------------------------------------------------------------------ life cycle

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, once started."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def base_url(self) -> str:
        """What to give the provider's ``base_url`` setting (the SDK's), once started."""
        return self.url

    def start(self: S) -> S:
        """Bind a free port and serve from a daemon thread; returns ``self``."""
        if self._httpd is not None:
            return self
        self._routes = [
            (method.upper(), re.compile(pattern), handler)
            for (method, pattern), handler in self.routes().items()
        ]
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self.port), _RequestHandler, self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.5},
            name=f"{type(self).__name__}:{self._httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut every open connection; a held-back SLOW reply is released."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()
        _shutdown_now(httpd)
        httpd.close_connections()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self: S) -> S:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ test controls

    def fail_next(self, fault: Fault, times: int = 1) -> None:
        """Answer the next ``times`` requests with ``fault`` instead of their normal reply."""
        with self._lock:
            self._faults.extend([fault] * times)

    @property
    def open_connections(self) -> int:
        """Client connections open now (a closed client's pooled connections leave at once)."""
        return self._httpd.connection_count() if self._httpd is not None else 0

    @property
    def pending_faults(self) -> int:
        """How many injected faults are still waiting for a request."""
        with self._lock:
            return len(self._faults)

    def reset(self) -> None:
        """Forget recorded requests, the served count and pending faults."""
        with self._lock:
            self.requests.clear()
            self.served = 0
            self._faults.clear()

    # ------------------------------------------------------------------ dispatch

    def _record(self, request: RecordedRequest) -> Fault | None:
        self.describe(request)
        with self._lock:
            self.requests.append(request)
            return self._faults.popleft() if self._faults else None

    def _count_served(self, delta: int) -> None:
        with self._lock:
            self.served += delta

    def _route(self, request: RecordedRequest) -> Response:
        path_matched = False
        for method, pattern, handler in self._routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if method == request.method:
                request.params = {k: v for k, v in match.groupdict().items() if v is not None}
                return handler(request)
        if path_matched:
            return self.error_response(405, f"Method {request.method} not allowed")
        return self.error_response(404, f"Unknown path {request.path}")

    def error_response(
        self, status: int, message: str, headers: dict[str, str] | None = None
    ) -> Response:
        """An HTTP error carrying the provider's error JSON."""
        return Response(status=status, json=self.error_body(status, message), headers=headers or {})

    def _fault_response(self, fault: Fault, request: RecordedRequest) -> Response:
        if fault is Fault.MALFORMED_JSON:
            return Response(body=MALFORMED_BODY)
        if fault is Fault.HUGE_REPLY:
            return Response(stream=_filler(self.huge_bytes))
        if fault is Fault.ECHO_CREDENTIALS:
            echoed = "; ".join(
                f"{name}: {request.headers[name]}"
                for name in CREDENTIAL_HEADERS
                if name in request.headers
            )
            query = "; ".join(f"{k}={v}" for k, v in request.query.items() if k == "key")
            return self.error_response(
                401, f"Invalid credentials. Received {echoed} {query}".strip()
            )
        status, message = FAULT_STATUS[fault]
        headers = {"Retry-After": _format_seconds(self.retry_after)} if status == 429 else {}
        return self.error_response(status, message, headers)

    def _hold(self, seconds: float) -> bool:
        """Wait, but wake up at once when the server stops; False once it is stopping."""
        if seconds > 0:
            return not self._stopping.wait(seconds)
        return not self._stopping.is_set()


def _filler(size: int, piece: int = 64 * 1024) -> Iterator[bytes]:
    """``size`` bytes of JSON-looking filler, produced piece by piece, never held whole."""
    block = b" " * piece
    sent = 0
    while sent < size:
        chunk = block[: min(piece, size - sent)]
        sent += len(chunk)
        yield chunk


def _shutdown_now(httpd: ThreadingHTTPServer) -> None:
    """``shutdown()`` without waiting out the serve loop's poll: a connection wakes it at once."""
    host, port = httpd.server_address[:2]
    stopper = threading.Thread(target=httpd.shutdown, daemon=True)
    stopper.start()
    while stopper.is_alive():
        with contextlib.suppress(OSError):
            socket.create_connection((str(host), port), timeout=0.5).close()
        stopper.join(0.01)


def _format_seconds(seconds: float | str) -> str:
    """A ``Retry-After`` value: seconds as the server would write them, or a string as given
    (an HTTP date, or garbage a test wants sent)."""
    if isinstance(seconds, str):
        return seconds
    return str(int(seconds)) if float(seconds).is_integer() else f"{seconds:g}"


class _HTTPServer(ThreadingHTTPServer):
    """Threaded server that knows its fake and can cut its keep-alive connections on stop."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: FakeServer
    ) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def track(self, sock: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(sock)
            else:
                self._connections.discard(sock)

    def connection_count(self) -> int:
        with self._connections_lock:
            return len(self._connections)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for sock in connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up (a timed-out SDK call) is routine, not worth a traceback."""
        log.debug("fake server connection from %s ended with an error", client_address)


class _RequestHandler(BaseHTTPRequestHandler):
    """Turns each HTTP request into a :class:`RecordedRequest` and writes the fake's response."""

    protocol_version = "HTTP/1.1"
    server_version = "QuestFoundryFake/1"
    disable_nagle_algorithm = True
    wbufsize = 64 * 1024  # headers and body leave in one write
    timeout = 60  # an idle keep-alive connection's thread ends after this
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, alive=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, alive=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("fake server: " + format, *args)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        fake = self.server.fake
        request = self._read_request()
        fault = fake._record(request)
        fake._hold(fake.latency)
        if fault is Fault.DROP_CONNECTION:
            self.close_connection = True
            return
        if fault is Fault.NEVER_ANSWER:
            self._wait_for_hang_up()
            return
        if fault is Fault.SLOW:
            fake._hold(fake.slow_seconds)
        if fault is not None and fault not in _LATE_FAULTS:
            response = fake._fault_response(fault, request)
        else:
            try:
                response = fake._route(request)
            except Exception as error:  # a bug in a fake's route: answer 500, keep serving
                log.exception("fake server route failed")
                response = fake.error_response(500, f"fake server error: {error}")
        # Counted before the reply leaves, so a client that has its answer always sees the count.
        success = 200 <= response.status < 300
        if success:
            fake._count_served(1)
        written = self._trickle(response) if fault is Fault.TRICKLE else self._write(response)
        if not written and success:
            fake._count_served(-1)

    def _wait_for_hang_up(self) -> None:
        """Send nothing; return when the client closes the connection or the server stops."""
        self.close_connection = True
        while not self.server.fake._stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.05)
            if readable:
                try:
                    if not self.connection.recv(1024, socket.MSG_PEEK):
                        return
                except OSError:
                    return
                self.server.fake._hold(0.05)  # bytes of a next request: keep waiting

    def _trickle(self, response: Response) -> bool:
        """Send ``response`` whole, status line included, one byte every ``trickle_seconds``."""
        real, buffer = self.wfile, io.BytesIO()
        self.wfile = buffer  # render the reply instead of sending it
        try:
            self._write(response)
        finally:
            self.wfile = real
        self.close_connection = True
        fake = self.server.fake
        for byte in buffer.getvalue():
            if not fake._hold(fake.trickle_seconds):
                return False
            try:
                real.write(bytes([byte]))
                real.flush()
            except OSError:
                return False
        return True

    def _read_request(self) -> RecordedRequest:
        parts = urlsplit(self.path)
        raw = self._read_body()
        headers = {name.lower(): value for name, value in self.headers.items()}
        return RecordedRequest(
            method=self.command,
            path=parts.path,
            query=dict(parse_qsl(parts.query, keep_blank_values=True)),
            headers=headers,
            body=_parse_json(raw),
            raw=raw,
        )

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            pieces: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(pieces)
                pieces.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _write(self, response: Response) -> bool:
        """Send ``response``; False when the client had already gone."""
        try:
            if response.stream is not None:
                self._write_stream(response)
            else:
                self._write_whole(response)
        except (ConnectionError, TimeoutError, OSError):
            self.close_connection = True
            return False
        return True

    def _start(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        for name, value in response.headers.items():
            self.send_header(name, value)

    def _write_whole(self, response: Response) -> None:
        if response.body is not None:
            payload = response.body
        elif response.json is not None:
            payload = json.dumps(response.json).encode()
        else:
            payload = b""
        self._start(response)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()

    def _write_stream(self, response: Response) -> None:
        assert response.stream is not None
        self._start(response)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        self.wfile.flush()
        for piece in response.stream:
            if piece:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _parse_json(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None


# ---------------------------------------------------------------------- helpers for fakes


def estimate_tokens(text: str) -> int:
    """A realistic token count for ``text``: about four characters a token, at least one."""
    return max(1, math.ceil(len(text) / 4))


def limit_reply(text: str, stops: Any, max_tokens: Any) -> tuple[str, bool]:
    """Cut ``text`` at the first stop sequence (a string or a list) and at ``max_tokens``.

    Returns the text and whether the token limit cut it, as a model would report it.
    """
    for stop in [stops] if isinstance(stops, str) else stops or ():
        at = text.find(stop) if isinstance(stop, str) and stop else -1
        if at >= 0:
            text = text[:at]
    if isinstance(max_tokens, int) and max_tokens > 0 and estimate_tokens(text) > max_tokens:
        return text[: max_tokens * 4], True
    return text, False


def field_at(data: Any, *path: str) -> Any:
    """``data[path[0]][path[1]]…`` in parsed JSON, or None where an object or a key is missing."""
    for key in path:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def number_or_none(value: Any) -> float | None:
    """A request's numeric parameter (temperature, …) as a float, or None when it is not one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def split_text(text: str, pieces: int = 4) -> list[str]:
    """``text`` cut into up to ``pieces`` consecutive parts whose concatenation is ``text``."""
    if not text:
        return []
    size = max(1, math.ceil(len(text) / pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def sse_event(data: Any) -> bytes:
    """One server-sent event carrying ``data`` as JSON (a ``str`` is sent as is)."""
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"data: {payload}\n\n".encode()


def ndjson_line(data: Any) -> bytes:
    """One newline-delimited JSON line (Ollama's streaming format)."""
    return json.dumps(data).encode() + b"\n"


def fake_server_fixture(
    factory: Callable[[], FakeServer], *, scope: str = "function", name: str | None = None
) -> Any:
    """A pytest fixture yielding a started server from ``factory``, stopped after use.

    ``server = fake_server_fixture(FakeOpenAI)`` in a test module or conftest. pytest is imported
    here, not at module level, so the fakes stay usable outside tests.
    """
    import pytest

    def _fixture() -> Iterator[FakeServer]:
        with factory() as server:
            yield server

    return pytest.fixture(scope=scope, name=name)(_fixture)  # type: ignore[call-overload]
