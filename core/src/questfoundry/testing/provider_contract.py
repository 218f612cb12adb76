"""The conformance suite every provider plugin runs: subclass :class:`ProviderContract`.

A provider's contract file is a few lines — three fixtures, and the standard tests run against it::

    from questfoundry.testing.fakes import FakeOpenAI
    from questfoundry.testing.provider_contract import ProviderContract

    class TestOpenAIContract(ProviderContract):
        secret = "sk-test"

        @pytest.fixture
        def server(self):
            with FakeOpenAI() as server:
                yield server

        @pytest.fixture
        def provider(self, server, backend_context):
            provider = make_openai_provider(
                {"api_key": self.secret, "base_url": f"{server.url}/v1",
                 "timeout_seconds": self.timeout, "max_reply_mb": self.max_reply_mb},
                backend_context)
            yield provider
            provider.close()

        @pytest.fixture
        def model(self):
            return "gpt-4o-mini"

Against a fake server (``server`` returns a started :class:`~questfoundry.testing.fakes.FakeServer`)
every test runs, fault injection included. For a live run against the real service, ``server``
returns None: the fault tests skip, and the comparisons between calls only check that each call
answered (a real model need not answer the same prompt twice the same way).

What the suite holds a provider to:

* a call returns non-empty text and usage with input and output tokens; ``agenerate`` answers as
  ``generate``; ``stream``/``astream`` chunks join into the same text, usage on the last chunk;
* every fault maps onto :mod:`questfoundry.contracts.errors`: 429 → ``ProviderRateLimitError`` with
  the ``Retry-After`` seconds; 500, 503, a dropped connection, a timeout and a malformed body →
  ``RetriableProviderError`` (a body that is not JSON is treated as a transient glitch of the
  service); 400, 401, 403, 404 → ``NonRetriableProviderError`` with the status and the service's
  own message;
* the provider never retries by itself: each call reaches the server exactly once (SDKs retry by
  default — turn that off; the gateway retries);
* the configured timeout (:attr:`ProviderContract.timeout`) is honoured; ``request.timeout`` is a
  deadline for the whole attempt on every path (whole, async, streamed), against a server that
  trickles its reply one byte at a time as against one that never answers;
* a reply larger than ``max_reply_mb`` (:attr:`ProviderContract.max_reply_mb`) fails, not
  retriable, without being held in memory whole;
* no error message reveals the API key (:attr:`ProviderContract.secret`), nor does anything in the
  error's chain or traceback, even when the server echoes the key back;
* one provider serves successive event loops (``asyncio.run`` after ``asyncio.run``) and loops on
  several threads with nothing printed, no warning and no unraisable exception;
* ``close()`` and ``aclose()`` can be called more than once;
* structured output: a request with ``params["response_schema"]`` (:data:`STRUCTURED_SCHEMA`, in the
  strict form every provider accepts) is answered — whole, async, streamed — with JSON text valid
  against the schema; the fake saw the schema in the provider's own field, not as a generic
  ``response_schema``; a malformed ``response_schema`` fails before anything is sent.

A subclass must not replace a standard test silently: redefining one without
:func:`replaces_standard_test` is a ``TypeError`` when the class is defined (see
:mod:`questfoundry.testing.contract`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import sys
import threading
import time
import traceback
import tracemalloc
import warnings
from collections.abc import AsyncIterator, Iterator
from typing import Any

import jsonschema
import pytest

from questfoundry.contracts.errors import (
    NonRetriableProviderError,
    ProviderError,
    ProviderRateLimitError,
    RetriableProviderError,
)
from questfoundry.contracts.protocols import Capability, Provider
from questfoundry.contracts.records import Chunk, Message, ProviderReply, ProviderRequest
from questfoundry.contracts.structured import RESPONSE_SCHEMA
from questfoundry.testing.contract import StandardSuite, replaces_standard_test
from questfoundry.testing.fakes.base import FAULT_STATUS, FakeServer, Fault

__all__ = ["ProviderContract", "replaces_standard_test"]

#: faults worth retrying, and the HTTP status each carries (None: no response at all)
RETRIABLE_FAULTS: dict[Fault, int | None] = {
    Fault.SERVER_ERROR: 500,
    Fault.UNAVAILABLE: 503,
    Fault.DROP_CONNECTION: None,
    Fault.MALFORMED_JSON: None,
}

#: faults retrying cannot fix, and their HTTP status
NON_RETRIABLE_FAULTS: dict[Fault, int] = {
    Fault.BAD_REQUEST: 400,
    Fault.UNAUTHORIZED: 401,
    Fault.FORBIDDEN: 403,
    Fault.NOT_FOUND: 404,
}

#: faults also checked through the async and streaming paths (kept short: SLOW costs a timeout)
PATH_FAULTS = (Fault.RATE_LIMIT, Fault.SERVER_ERROR, Fault.DROP_CONNECTION, Fault.UNAUTHORIZED)

#: the four ways to call a provider; the async ones each run in a fresh event loop
PATHS = ("generate", "agenerate", "stream", "astream")

#: the schema of the structured-output tests: nested objects, a bounded array, an enum, an integer
#: range, a nullable field — closed and fully required (OpenAI's strict form), and only keywords
#: the real services document for structured output (no string lengths), so a live run passes too
STRUCTURED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "sections": {
            "type": "array",
            "minItems": 1,
            "maxItems": 3,
            "items": {
                "type": "object",
                "properties": {
                    "number": {"type": "integer", "minimum": 1, "maximum": 3},
                    "mood": {"type": "string", "enum": ["calm", "stormy"]},
                    "keeper": {"type": ["string", "null"]},
                },
                "required": ["number", "mood", "keeper"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["title", "sections"],
    "additionalProperties": False,
}


class ProviderContract(StandardSuite):
    """Standard tests for a :class:`~questfoundry.contracts.protocols.Provider`; see the module
    docstring.

    Subclasses implement the ``server``, ``provider`` and ``model`` fixtures, build the provider
    with :attr:`timeout` as its timeout and :attr:`max_reply_mb` as its reply cap and, when it
    takes an API key, set :attr:`secret` to it.
    """

    #: seconds the provider under test must be configured to wait for a reply (long enough for a
    #: fake server on a busy machine to answer, or to deliver its fault)
    timeout: float = 1.0
    #: the ``max_reply_mb`` the provider under test must be configured with
    max_reply_mb: float = 1.0
    #: the ``request.timeout`` of the deadline tests (shorter than :attr:`timeout`, which it beats)
    attempt_seconds: float = 0.2
    #: how much longer than :attr:`timeout` a timed-out call may take to fail
    timeout_margin: float = 1.0
    #: the API key the provider was built with; no error message may contain it
    secret: str | None = None
    #: the prompt of the standard request
    prompt: str = "Name one lighthouse on a stormy coast, in five words."

    # ------------------------------------------------------------------ fixtures to implement

    @pytest.fixture
    def server(self) -> FakeServer | None:
        """A started fake server the provider talks to, or None for a live run."""
        raise NotImplementedError("implement the `server` fixture")

    @pytest.fixture
    def provider(self) -> Provider:
        """The provider under test, built by its factory for ``server``, with ``timeout``."""
        raise NotImplementedError("implement the `provider` fixture")

    @pytest.fixture
    def model(self) -> str:
        """The text model to ask."""
        raise NotImplementedError("implement the `model` fixture")

    # ------------------------------------------------------------------ helpers

    def make_request(self, model: str, **changes: Any) -> ProviderRequest:
        """The standard request; a subclass may adapt it (e.g. a parameter its service needs)."""
        fields: dict[str, Any] = {
            "model": model,
            "messages": (
                Message("system", "You answer briefly."),
                Message("user", self.prompt),
            ),
            "params": {"temperature": 0.0, "max_tokens": 32},
        }
        fields.update(changes)
        return ProviderRequest(**fields)

    def structured_request(self, model: str, prompt: str | None = None) -> ProviderRequest:
        """The standard request asking for an instance of :data:`STRUCTURED_SCHEMA`."""
        asked = {"name": "lighthouses", "schema": STRUCTURED_SCHEMA}
        return self.make_request(
            model,
            messages=(Message("user", prompt or f"{self.prompt} Answer as JSON."),),
            params={"temperature": 0.0, "max_tokens": 1024, RESPONSE_SCHEMA: asked},
        )

    @staticmethod
    def check_instance(text: str | None) -> Any:
        """The JSON instance in ``text``, checked against :data:`STRUCTURED_SCHEMA`."""
        assert text, "a structured call must return text"
        instance = json.loads(text)
        jsonschema.validate(instance, STRUCTURED_SCHEMA)
        return instance

    @staticmethod
    def need_server(server: FakeServer | None) -> FakeServer:
        if server is None:
            pytest.skip("fault injection needs the fake server (live run)")
        server.reset()
        return server

    def check_reply(self, reply: ProviderReply) -> None:
        assert isinstance(reply, ProviderReply)
        assert reply.text, "a text call must return non-empty text"
        assert reply.usage.input_tokens > 0, "usage must count input tokens"
        assert reply.usage.output_tokens > 0, "usage must count output tokens"

    def check_chunks(self, chunks: list[Chunk], expected: ProviderReply | None) -> None:
        assert chunks, "a stream must yield chunks"
        assert all(isinstance(chunk, Chunk) for chunk in chunks)
        text = "".join(chunk.text for chunk in chunks)
        assert text, "a stream must yield text"
        with_usage = [i for i, chunk in enumerate(chunks) if chunk.usage is not None]
        assert with_usage == [len(chunks) - 1], "usage belongs on the last chunk, and only there"
        usage = chunks[-1].usage
        assert usage is not None
        assert usage.input_tokens > 0
        assert usage.output_tokens > 0
        if expected is not None:  # a fake answers deterministically: compare exactly
            assert text == expected.text
            assert usage == expected.usage
            assert sum(1 for chunk in chunks if chunk.text) >= 2, "the fake streams in pieces"

    def check_error(
        self, error: BaseException, provider: Provider, expected: type[ProviderError]
    ) -> None:
        assert isinstance(error, expected), f"expected {expected.__name__}, got {error!r}"
        assert isinstance(error, ProviderError)
        assert error.provider == provider.name, "the error names the provider"
        assert error.retriable is issubclass(expected, RetriableProviderError)
        message = str(error)
        assert message and "\n" not in message.strip(), "an error message is one line"
        if self.secret:
            assert self.secret not in message, "an error message must never carry the API key"
            assert self.secret not in repr(error.args)

    def check_fault(self, fault: Fault, error: BaseException, provider: Provider) -> None:
        """``error`` is what a call that met ``fault`` raised; check its class and content."""
        if fault is Fault.RATE_LIMIT:
            self.check_error(error, provider, ProviderRateLimitError)
            assert isinstance(error, ProviderRateLimitError)
            assert error.status_code == 429
            assert error.retry_after is not None, "retry_after comes from Retry-After"
        elif fault in NON_RETRIABLE_FAULTS:
            self.check_error(error, provider, NonRetriableProviderError)
            assert isinstance(error, ProviderError)
            assert error.status_code == NON_RETRIABLE_FAULTS[fault]
            assert FAULT_STATUS[fault][1] in str(error), "the service's own message is kept"
        else:
            self.check_error(error, provider, RetriableProviderError)
            assert not isinstance(error, ProviderRateLimitError)
            status = RETRIABLE_FAULTS.get(fault)
            if status is not None:
                assert isinstance(error, ProviderError)
                assert error.status_code == status

    # ------------------------------------------------------------------ the provider itself

    def test_provider_has_a_name_and_declares_capabilities(self, provider: Provider) -> None:
        assert isinstance(provider, Provider)
        assert isinstance(provider.name, str) and provider.name
        assert isinstance(provider.capabilities, frozenset)

    @pytest.mark.slow
    def test_text_call_returns_text_and_usage(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        before = server.served if server else 0
        reply = provider.generate(self.make_request(model))
        self.check_reply(reply)
        if server is not None:
            assert server.served == before + 1

    def test_prompt_without_messages_is_sent_as_the_user_message(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        reply = provider.generate(self.make_request(model, messages=(), prompt=self.prompt))
        self.check_reply(reply)
        if server is not None:
            assert self.prompt in server.requests[-1].raw.decode(), "the prompt reached the server"

    def test_same_request_gives_the_same_reply_from_a_fake(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        first = provider.generate(self.make_request(model))
        second = provider.generate(self.make_request(model))
        self.check_reply(second)
        if server is not None:
            assert first.text == second.text
            other = provider.generate(self.make_request(model, prompt="x", messages=()))
            assert other.text != first.text, "a different prompt gets a different reply"

    @pytest.mark.asyncio
    async def test_agenerate_answers_like_generate(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        expected = provider.generate(self.make_request(model))
        reply = await provider.agenerate(self.make_request(model))
        self.check_reply(reply)
        if server is not None:
            assert reply.text == expected.text
            assert reply.usage == expected.usage

    def test_stream_chunks_join_into_the_reply(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        if Capability.STREAMING not in provider.capabilities:
            pytest.skip("the provider does not declare streaming")
        expected = provider.generate(self.make_request(model)) if server else None
        before = len(server.requests) if server else 0
        chunks = list(provider.stream(self.make_request(model)))
        self.check_chunks(chunks, expected)
        if server is not None:
            assert len(server.requests) == before + 1

    @pytest.mark.asyncio
    async def test_astream_chunks_join_into_the_reply(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        if Capability.STREAMING not in provider.capabilities:
            pytest.skip("the provider does not declare streaming")
        expected = provider.generate(self.make_request(model)) if server else None
        chunks = [chunk async for chunk in provider.astream(self.make_request(model))]
        self.check_chunks(chunks, expected)

    def test_close_can_be_called_twice(self, provider: Provider, model: str) -> None:
        provider.generate(self.make_request(model))
        provider.close()
        provider.close()

    @pytest.mark.asyncio
    async def test_aclose_can_be_called_twice(self, provider: Provider, model: str) -> None:
        await provider.agenerate(self.make_request(model))
        await provider.aclose()
        await provider.aclose()

    # ------------------------------------------------------------------ structured output

    def test_structured_output_is_json_valid_against_the_schema(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        reply = provider.generate(self.structured_request(model))
        self.check_instance(reply.text)
        if server is not None:
            sent = server.requests[-1]
            assert sent.response_schema == STRUCTURED_SCHEMA, "the schema reached the server"
            assert f'"{RESPONSE_SCHEMA}"' not in sent.raw.decode(), "sent in the provider's field"
            assert sent.temperature == 0.0

    @pytest.mark.slow
    @pytest.mark.parametrize("path", ["agenerate", "stream", "astream"])
    def test_structured_output_through_every_path(
        self, provider: Provider, server: FakeServer | None, model: str, path: str
    ) -> None:
        text = self.call(provider, self.structured_request(model), path)
        self.check_instance(text)
        if server is not None:
            assert server.requests[-1].response_schema == STRUCTURED_SCHEMA
            assert text == provider.generate(self.structured_request(model)).text

    @pytest.mark.slow
    def test_structured_output_from_a_fake_depends_on_the_prompt(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        self.need_server(server)
        texts = [
            provider.generate(self.structured_request(model, f"Lighthouse {n}")).text
            for n in range(4)
        ]
        assert len(set(texts)) == 4, "different prompts get different instances"

    @pytest.mark.slow
    def test_a_malformed_response_schema_fails_before_anything_is_sent(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        fake = self.need_server(server)
        request = self.make_request(model, params={RESPONSE_SCHEMA: {"name": "x", "schema": "no"}})
        with pytest.raises(NonRetriableProviderError) as caught:
            provider.generate(request)
        self.check_error(caught.value, provider, NonRetriableProviderError)
        assert RESPONSE_SCHEMA in str(caught.value)
        assert fake.requests == []

    # ------------------------------------------------------------------ faults

    @pytest.mark.slow
    @pytest.mark.parametrize(
        "fault",
        [Fault.RATE_LIMIT, *RETRIABLE_FAULTS, *NON_RETRIABLE_FAULTS],
        ids=lambda fault: fault.value,
    )
    def test_fault_is_classified_and_not_retried(
        self, provider: Provider, server: FakeServer | None, model: str, fault: Fault
    ) -> None:
        fake = self.need_server(server)
        fake.fail_next(fault)
        with pytest.raises(ProviderError) as caught:
            provider.generate(self.make_request(model))
        self.check_fault(fault, caught.value, provider)
        assert len(fake.requests) == 1, "the provider must not retry: the gateway does"
        assert fake.pending_faults == 0

    def test_rate_limit_carries_retry_after_from_the_response(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        fake = self.need_server(server)
        fake.retry_after = 7
        fake.fail_next(Fault.RATE_LIMIT)
        with pytest.raises(ProviderRateLimitError) as caught:
            provider.generate(self.make_request(model))
        assert caught.value.retry_after == pytest.approx(7)

    def test_call_after_a_fault_succeeds(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        fake = self.need_server(server)
        fake.fail_next(Fault.DROP_CONNECTION)
        with pytest.raises(RetriableProviderError):
            provider.generate(self.make_request(model))
        self.check_reply(provider.generate(self.make_request(model)))
        assert len(fake.requests) == 2

    @pytest.mark.slow
    def test_timeout_is_honoured(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        fake = self.need_server(server)
        assert fake.slow_seconds > self.timeout + self.timeout_margin, "the fake must be slower"
        fake.fail_next(Fault.SLOW)
        started = time.monotonic()
        with pytest.raises(RetriableProviderError) as caught:
            provider.generate(self.make_request(model))
        elapsed = time.monotonic() - started
        self.check_error(caught.value, provider, RetriableProviderError)
        assert elapsed < self.timeout + self.timeout_margin, f"took {elapsed:.2f}s to time out"
        assert len(fake.requests) == 1

    @pytest.mark.slow
    @pytest.mark.asyncio
    async def test_async_timeout_is_honoured(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        fake = self.need_server(server)
        fake.fail_next(Fault.SLOW)
        started = time.monotonic()
        with pytest.raises(RetriableProviderError):
            await provider.agenerate(self.make_request(model))
        assert time.monotonic() - started < self.timeout + self.timeout_margin
        assert len(fake.requests) == 1

    @pytest.mark.asyncio
    @pytest.mark.parametrize("fault", PATH_FAULTS, ids=lambda fault: fault.value)
    async def test_async_fault_is_classified_and_not_retried(
        self, provider: Provider, server: FakeServer | None, model: str, fault: Fault
    ) -> None:
        fake = self.need_server(server)
        fake.fail_next(fault)
        with pytest.raises(ProviderError) as caught:
            await provider.agenerate(self.make_request(model))
        self.check_fault(fault, caught.value, provider)
        assert len(fake.requests) == 1

    @pytest.mark.slow
    @pytest.mark.parametrize("fault", PATH_FAULTS, ids=lambda fault: fault.value)
    def test_stream_fault_is_classified_and_not_retried(
        self, provider: Provider, server: FakeServer | None, model: str, fault: Fault
    ) -> None:
        if Capability.STREAMING not in provider.capabilities:
            pytest.skip("the provider does not declare streaming")
        fake = self.need_server(server)
        fake.fail_next(fault)
        with pytest.raises(ProviderError) as caught:
            list(provider.stream(self.make_request(model)))
        self.check_fault(fault, caught.value, provider)
        assert len(fake.requests) == 1

    @pytest.mark.slow
    @pytest.mark.asyncio
    @pytest.mark.parametrize("fault", PATH_FAULTS, ids=lambda fault: fault.value)
    async def test_astream_fault_is_classified_and_not_retried(
        self, provider: Provider, server: FakeServer | None, model: str, fault: Fault
    ) -> None:
        if Capability.STREAMING not in provider.capabilities:
            pytest.skip("the provider does not declare streaming")
        fake = self.need_server(server)
        fake.fail_next(fault)
        with pytest.raises(ProviderError) as caught:
            _ = [chunk async for chunk in provider.astream(self.make_request(model))]
        self.check_fault(fault, caught.value, provider)
        assert len(fake.requests) == 1

    # ------------------------------------------------------------------ deadlines, size, secrets

    def call(self, provider: Provider, request: ProviderRequest, path: str) -> str:
        """Call ``provider`` through ``path`` (one of :data:`PATHS`); returns the text."""
        if path in ("stream", "astream") and Capability.STREAMING not in provider.capabilities:
            pytest.skip("the provider does not declare streaming")
        if path == "generate":
            return provider.generate(request).text or ""
        if path == "agenerate":
            return asyncio.run(provider.agenerate(request)).text or ""
        if path == "stream":
            return "".join(chunk.text for chunk in provider.stream(request))
        return asyncio.run(_joined(provider.astream(request)))

    def check_deadline(
        self,
        provider: Provider,
        server: FakeServer | None,
        model: str,
        fault: Fault,
        path: str,
        seconds: float | None = None,
    ) -> None:
        """A call meeting ``fault`` fails at its deadline: ``request.timeout`` of ``seconds``,
        or the configured :attr:`timeout` when ``seconds`` is None."""
        fake = self.need_server(server)
        fake.fail_next(fault)
        request = self.make_request(model, timeout=seconds)
        deadline = self.timeout if seconds is None else seconds
        started = time.monotonic()
        with pytest.raises(ProviderError) as caught:
            self.call(provider, request, path)
        elapsed = time.monotonic() - started
        self.check_error(caught.value, provider, RetriableProviderError)
        assert f"within {deadline:g} s" in str(caught.value), str(caught.value)
        assert elapsed < deadline + self.timeout_margin, f"took {elapsed:.2f}s"
        # one attempt at most, never retried (on a machine too busy to send it within the
        # deadline, none reaches the server; a retry would make two)
        time.sleep(0.05)
        assert len(fake.requests) <= 1

    @pytest.mark.slow
    @pytest.mark.parametrize("path", PATHS)
    def test_trickled_reply_fails_at_the_attempt_deadline(
        self, provider: Provider, server: FakeServer | None, model: str, path: str
    ) -> None:
        if server is not None:  # every read returns at once; the whole reply would take seconds
            server.trickle_seconds = 0.02
        self.check_deadline(provider, server, model, Fault.TRICKLE, path, self.attempt_seconds)

    @pytest.mark.slow
    def test_configured_timeout_is_the_deadline_of_a_request_without_one(
        self, provider: Provider, server: FakeServer | None, model: str
    ) -> None:
        if server is not None:
            server.trickle_seconds = 0.02
        self.check_deadline(provider, server, model, Fault.TRICKLE, "generate")

    @pytest.mark.slow
    @pytest.mark.parametrize("path", PATHS)
    def test_server_that_never_answers_fails_at_the_attempt_deadline(
        self, provider: Provider, server: FakeServer | None, model: str, path: str
    ) -> None:
        self.check_deadline(provider, server, model, Fault.NEVER_ANSWER, path, self.attempt_seconds)

    @pytest.mark.slow
    @pytest.mark.parametrize("path", PATHS)
    def test_reply_larger_than_max_reply_mb_fails_without_being_held_whole(
        self, provider: Provider, server: FakeServer | None, model: str, path: str
    ) -> None:
        fake = self.need_server(server)
        fake.huge_bytes = 200 * 1024 * 1024
        fake.fail_next(Fault.HUGE_REPLY)
        tracemalloc.start()
        try:
            with pytest.raises(ProviderError) as caught:
                self.call(provider, self.make_request(model), path)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        self.check_error(caught.value, provider, NonRetriableProviderError)
        assert "max_reply_mb" in str(caught.value)
        limit = 16 * self.max_reply_mb * 1024 * 1024
        assert peak < limit, f"{peak / 2**20:.1f} MiB held to refuse a {self.max_reply_mb} MiB cap"

    @pytest.mark.parametrize("path", PATHS)
    def test_a_server_that_is_not_running_is_named_in_the_error(
        self, provider: Provider, server: FakeServer | None, model: str, path: str
    ) -> None:
        fake = self.need_server(server)
        url = fake.url
        fake.stop()  # nothing listens there now: the connection is refused
        with pytest.raises(ProviderError) as caught:
            self.call(provider, self.make_request(model), path)
        self.check_error(caught.value, provider, RetriableProviderError)
        assert url in str(caught.value), "the error says which address was tried"

    @pytest.mark.parametrize("path", PATHS)
    def test_a_key_echoed_by_the_server_is_nowhere_in_the_error_or_its_traceback(
        self, provider: Provider, server: FakeServer | None, model: str, path: str
    ) -> None:
        fake = self.need_server(server)
        if not self.secret:
            pytest.skip("the provider sends no API key")
        fake.fail_next(Fault.ECHO_CREDENTIALS)
        with pytest.raises(ProviderError) as caught:
            self.call(provider, self.make_request(model), path)
        sent = " ".join(fake.requests[-1].headers.values()) + repr(fake.requests[-1].query)
        assert self.secret in sent, "the key went out, so the fake echoed it back"
        self.check_error(caught.value, provider, NonRetriableProviderError)
        shown = "".join(traceback.format_exception(caught.value))
        chain = "".join(repr(vars(error)) + repr(error) for error in _chain(caught.value))
        assert (shown + chain).count(self.secret) == 0

    @pytest.mark.slow
    def test_successive_event_loops_share_one_provider_quietly(
        self,
        provider: Provider,
        server: FakeServer | None,
        model: str,
        capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        fake = self.need_server(server)
        with _quiet(capfd, caplog) as noise:
            for _ in range(3):
                self.check_reply(asyncio.run(provider.agenerate(self.make_request(model))))
                if Capability.STREAMING in provider.capabilities:
                    assert asyncio.run(_joined(provider.astream(self.make_request(model))))
        assert noise == []
        assert fake.served == (6 if Capability.STREAMING in provider.capabilities else 3)

    @pytest.mark.slow
    def test_event_loops_on_several_threads_share_one_provider_quietly(
        self,
        provider: Provider,
        server: FakeServer | None,
        model: str,
        capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        fake = self.need_server(server)
        failures: list[BaseException] = []

        def worker() -> None:
            try:
                for _ in range(2):
                    self.check_reply(asyncio.run(provider.agenerate(self.make_request(model))))
            except BaseException as error:  # reported by the test thread
                failures.append(error)

        with _quiet(capfd, caplog) as noise:
            threads = [threading.Thread(target=worker) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert failures == []
        assert noise == []
        assert fake.served == 4


async def _joined(chunks: AsyncIterator[Chunk]) -> str:
    return "".join([chunk.text async for chunk in chunks])


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    """``error`` and every exception its ``__cause__``/``__context__`` lead to."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


@contextlib.contextmanager
def _quiet(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Iterator[list[str]]:
    """Collects what a clumsy event-loop shutdown leaves behind: stderr output, asyncio's error
    logs ("Task exception was never retrieved"), ResourceWarnings and unraisable exceptions (a
    client finalised against a closed loop). The list is complete once the block has ended."""
    noise: list[str] = []
    capfd.readouterr()
    caplog.set_level(logging.WARNING, logger="asyncio")
    hook = sys.unraisablehook
    sys.unraisablehook = lambda unraisable: noise.append(f"unraisable: {unraisable.exc_value!r}")
    try:
        with warnings.catch_warnings(record=True) as recorded:
            warnings.simplefilter("always", ResourceWarning)
            yield noise
            gc.collect()  # finalisers of whatever the loops left behind run now
    finally:
        sys.unraisablehook = hook
    noise += [f"warning: {w.message}" for w in recorded if w.category is ResourceWarning]
    noise += [f"log: {r.getMessage()}" for r in caplog.records if r.name == "asyncio"]
    err = capfd.readouterr().err
    if err:
        noise.append(f"stderr: {err}")
