"""End to end: the gateway, the real provider plugins and SDKs, over real HTTP to the fake servers.

Every test goes through :class:`~questfoundry.gateway.Gateway` with the plugins that
:func:`~questfoundry.registry.manager.get_plugin_manager` discovers (provider, cost model, cache),
the real ``openai`` / ``ollama`` / ``google-genai`` clients, and a fake provider server on
127.0.0.1. Nothing patches an SDK; the gateway's clock is a :class:`FakeClock`, so a ``Retry-After``
is honoured without anyone sleeping.

Prices are checked against genai-prices' own ``calc_price`` for the usage the *server* reported,
read by sending the recorded request to the fake once more with the standard library, so neither
the provider's usage mapping nor the cost model is trusted to check itself. Money is compared
exactly: the reply's ``Decimal`` against genai-prices' ``Decimal``, and the ledger's whole
pico-dollars (its storage unit) converted back to a ``Decimal`` against the same.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import genai_prices
import pytest

from questfoundry.config import Config, validate
from questfoundry.contracts.errors import NonRetriableProviderError
from questfoundry.contracts.records import Reply, Request, Usage
from questfoundry.gateway import Gateway
from questfoundry.gateway.keys import request_fields
from questfoundry.kit import from_pico
from questfoundry.registry import PluginManager, get_plugin_manager
from questfoundry.runtime import open_gateway
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.faces import Face
from questfoundry.testing.fakes import (
    FakeGemini,
    FakeOllama,
    FakeOpenAI,
    FakeServer,
    Fault,
    reply_text,
)

#: a fake key nobody could mistake for anything else, searched for wherever a key must not be
SECRET_KEY = "qf-e2e-secret-7d1c0ffee9b4"
#: the Retry-After the fakes send with an injected 429 (distinct from the 1 s default)
RETRY_AFTER = 7.0
LEDGER_COLUMNS = (
    "status, provider, model, input_tokens, output_tokens, cached_input_tokens, cost, saved, "
    "retries"
)


def openai_usage(answer: Mapping[str, Any]) -> Usage:
    usage = answer["usage"]
    cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
    return Usage(usage["prompt_tokens"], usage["completion_tokens"], cached)


def gemini_usage(answer: Mapping[str, Any]) -> Usage:
    meta = answer["usageMetadata"]
    output = meta["candidatesTokenCount"] + meta.get("thoughtsTokenCount", 0)
    return Usage(meta["promptTokenCount"], output, meta.get("cachedContentTokenCount", 0))


def ollama_usage(answer: Mapping[str, Any]) -> Usage:
    return Usage(answer["prompt_eval_count"], answer["eval_count"])


@dataclass(frozen=True)
class Case:
    """One provider: its plugin name, fake server, model and how to read and price its usage.

    ``prices_id`` is genai-prices' provider id; None means the calls are free (Ollama).
    """

    name: str
    fake: Callable[..., FakeServer]
    model: str
    url_suffix: str
    keyed: bool
    prices_id: str | None
    usage_of: Callable[[Mapping[str, Any]], Usage]

    def __str__(self) -> str:
        return self.name

    def settings(self, server: FakeServer, key: str = SECRET_KEY) -> dict[str, Any]:
        """``providers.text.<name>`` pointing at ``server`` (OpenAI's base_url ends in /v1)."""
        settings: dict[str, Any] = {"model": self.model, "base_url": server.url + self.url_suffix}
        if self.keyed:
            settings["api_key"] = key
        return settings


OPENAI = Case("openai", FakeOpenAI, "gpt-4o-mini", "/v1", True, "openai", openai_usage)
OLLAMA = Case("ollama", FakeOllama, "llama3.2", "", False, None, ollama_usage)
GEMINI = Case("gemini", FakeGemini, "gemini-2.5-flash", "", True, "google", gemini_usage)
CASES = [OPENAI, OLLAMA, GEMINI]
PRICED = [OPENAI, GEMINI]

every_provider = pytest.mark.parametrize("case", CASES, ids=str)
priced_providers = pytest.mark.parametrize("case", PRICED, ids=str)
keyed_providers = pytest.mark.parametrize("case", [c for c in CASES if c.keyed], ids=str)


# ---------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def manager() -> PluginManager:
    """The installed plugins, whatever QUESTFOUNDRY_*_PLUGINS say in the environment."""
    return get_plugin_manager(env={})


@pytest.fixture
def server(case: Case) -> Iterator[FakeServer]:
    with case.fake(retry_after=RETRY_AFTER) as fake:
        yield fake


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make_config(
    case: Case, server: FakeServer, root: Path, *, cache: str = "memory", key: str = SECRET_KEY
) -> Config:
    """A validated configuration with ``case`` as the default text provider."""
    data: dict[str, Any] = {
        "providers": {"text": {"default": case.name, case.name: case.settings(server, key)}},
        "caching": {"backend": cache},
    }
    validate(data)
    return Config(
        data=data, path=None, project_dir=root / ".questfoundry", secret_paths=frozenset()
    )


@pytest.fixture
def gateway(
    case: Case, server: FakeServer, tmp_path: Path, manager: PluginManager, clock: FakeClock
) -> Iterator[Gateway]:
    with open_gateway(make_config(case, server, tmp_path), manager, clock=clock) as opened:
        yield opened


def ask(text: str) -> Request:
    return Request(messages=[{"role": "user", "content": text}])


def said(case: Case, text: str) -> str:
    """What the fake answers :func:`ask` (``text``): its placeholder prose for that prompt."""
    return reply_text(text, case.model)


def server_usage(case: Case, server: FakeServer, index: int = -1) -> Usage:
    """The usage the server reports for the ``index``-th recorded request, sent again as it was.

    A streamed answer's usage is in its last JSON object (OpenAI's usage chunk, Gemini's final
    event, Ollama's ``done`` line).
    """
    recorded = server.requests[index]
    kept = ("authorization", "x-goog-api-key", "content-type")
    headers = {name: value for name, value in recorded.headers.items() if name in kept}
    query = "&".join(f"{name}={value}" for name, value in recorded.query.items())
    url = server.url + recorded.path + (f"?{query}" if query else "")
    sent = urllib.request.Request(url, recorded.raw, headers, method=recorded.method)
    with urllib.request.urlopen(sent, timeout=5) as response:
        body = response.read().decode()
    objects = [line.removeprefix("data:").strip() for line in body.splitlines()]
    answers = [json.loads(text) for text in objects if text and text != "[DONE]"]
    return case.usage_of(answers[-1])


def genai_price(case: Case, usage: Usage) -> Decimal:
    """genai-prices' own price for ``usage`` of the case's model; Ollama is free."""
    if case.prices_id is None:
        return Decimal(0)
    priced = genai_prices.calc_price(
        genai_prices.Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cached_input_tokens,
        ),
        model_ref=case.model,
        provider_id=case.prices_id,
    )
    return priced.total_price


def ledger_rows(gateway: Gateway) -> list[dict[str, Any]]:
    """Every row of the gateway's ledger file, as stored (money in whole pico-dollars)."""
    gateway.ledger.flush()
    conn = sqlite3.connect(f"file:{gateway.ledger.path}?mode=ro", uri=True)
    try:
        cursor = conn.execute(f"SELECT {LEDGER_COLUMNS} FROM calls ORDER BY id")
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    finally:
        conn.close()


def spent_rows(gateway: Gateway) -> list[dict[str, Any]]:
    return [row for row in ledger_rows(gateway) if row["status"] == "spent"]


def assert_recorded_as_the_server_reported(
    case: Case, server: FakeServer, gateway: Gateway, reply: Reply
) -> None:
    """The one spent ledger row carries the server's usage and genai-prices' price, exactly."""
    usage = server_usage(case, server)
    price = genai_price(case, usage)
    assert reply.usage == usage
    assert reply.cost == price
    [row] = spent_rows(gateway)
    assert (row["input_tokens"], row["output_tokens"], row["cached_input_tokens"]) == (
        usage.input_tokens,
        usage.output_tokens,
        usage.cached_input_tokens,
    )
    assert row["cost"] is not None
    assert from_pico(row["cost"]) == price


# ---------------------------------------------------------------------- the cache


@every_provider
def test_second_identical_call_is_a_cache_hit_and_never_reaches_the_server(
    gateway_face: Face, case: Case, server: FakeServer, gateway: Gateway
) -> None:
    first = gateway_face.generate(gateway, ask("Name the lighthouse keeper."))
    served, received = server.served, len(server.requests)

    second = gateway_face.generate(gateway, ask("Name the lighthouse keeper."))

    assert (served, received) == (1, 1)
    assert (server.served, len(server.requests)) == (served, received)
    assert not first.cache_hit and second.cache_hit
    assert second.text == first.text == said(case, "Name the lighthouse keeper.")
    assert second.usage == first.usage
    assert second.cost == 0 and second.saved == first.cost
    assert [row["status"] for row in ledger_rows(gateway)] == ["spent"]  # hits are counted:
    assert [(row.calls, row.hits) for row in gateway.ledger.report()] == [(2, 1)]


@pytest.mark.slow
@every_provider
def test_file_cache_answers_a_later_gateway_without_a_request(
    gateway_face: Face,
    case: Case,
    server: FakeServer,
    tmp_path: Path,
    manager: PluginManager,
    clock: FakeClock,
) -> None:
    if "file" not in manager.backends("cache backend"):
        pytest.skip("questfoundry-cache-file is not installed")
    config = make_config(case, server, tmp_path, cache="file")
    with open_gateway(config, manager, clock=clock) as first_run:
        first = gateway_face.generate(first_run, ask("Which door is locked?"))

    with open_gateway(config, manager, clock=clock) as second_run:
        second = gateway_face.generate(second_run, ask("Which door is locked?"))
        stats = second_run.cache.stats() if second_run.cache else None

    assert (server.served, len(server.requests)) == (1, 1)
    assert second.cache_hit and second.text == first.text
    assert stats is not None and stats.entries == 1
    assert any((tmp_path / ".questfoundry" / "cache").iterdir())


# ---------------------------------------------------------------------- prices and the ledger


@priced_providers
def test_ledger_cost_is_genai_prices_price_for_the_usage_the_server_reported(
    gateway_face: Face, case: Case, server: FakeServer, gateway: Gateway
) -> None:
    reply = gateway_face.generate(gateway, ask("How much does a dragon's hoard weigh, roughly?"))

    assert reply.cost is not None and reply.cost > 0
    assert_recorded_as_the_server_reported(case, server, gateway, reply)


@pytest.mark.parametrize("case", [OLLAMA], ids=str)
def test_ollama_calls_cost_exactly_zero(
    gateway_face: Face, case: Case, server: FakeServer, gateway: Gateway
) -> None:
    reply = gateway_face.generate(gateway, ask("Describe the cellar."))

    assert reply.usage.total_tokens > 0
    assert reply.cost == Decimal(0)
    [row] = spent_rows(gateway)
    assert row["cost"] == 0  # a known price of zero, not NULL (unknown)
    assert_recorded_as_the_server_reported(case, server, gateway, reply)


# ---------------------------------------------------------------------- failures


@pytest.mark.slow
@every_provider
def test_rate_limit_burst_is_retried_after_retry_after_and_succeeds(
    gateway_face: Face, case: Case, server: FakeServer, gateway: Gateway, clock: FakeClock
) -> None:
    server.fail_next(Fault.RATE_LIMIT, times=2)

    reply = gateway_face.generate(gateway, ask("Roll for initiative."))

    assert clock.slept == [RETRY_AFTER, RETRY_AFTER]
    assert reply.retries == 2
    assert reply.text == said(case, "Roll for initiative.")
    assert (len(server.requests), server.served, server.pending_faults) == (3, 1, 0)
    [row] = spent_rows(gateway)
    assert row["retries"] == 2


@pytest.mark.slow
@every_provider
def test_unauthorized_fails_at_once_with_one_request_and_nothing_recorded(
    gateway_face: Face, case: Case, server: FakeServer, gateway: Gateway, clock: FakeClock
) -> None:
    server.fail_next(Fault.UNAUTHORIZED)

    with pytest.raises(NonRetriableProviderError) as failure:
        gateway_face.generate(gateway, ask("Open the vault."))

    assert len(server.requests) == 1 and server.served == 0
    assert clock.slept == []
    assert SECRET_KEY not in str(failure.value)
    assert ledger_rows(gateway) == []
    gateway_face.generate(gateway, ask("Open the vault."))  # the failure was not cached
    assert len(server.requests) == 2


# ---------------------------------------------------------------------- streaming


@pytest.mark.slow
@every_provider
def test_streamed_call_is_priced_then_replayed_from_the_cache(
    gateway_face: Face, case: Case, server: FakeServer, gateway: Gateway
) -> None:
    first = gateway_face.stream(gateway, ask("Tell the tale of the drowned bell."))
    chunks = first.pieces
    served, received = server.served, len(server.requests)

    second = gateway_face.stream(gateway, ask("Tell the tale of the drowned bell."))
    replayed = second.pieces

    assert len(chunks) > 1
    assert first.reply is not None and not first.reply.cache_hit
    assert "".join(chunks) == first.reply.text == said(case, "Tell the tale of the drowned bell.")
    assert replayed == chunks
    assert second.reply is not None and second.reply.cache_hit
    assert (server.served, len(server.requests)) == (served, received) == (1, 1)
    assert_recorded_as_the_server_reported(case, server, gateway, first.reply)


@pytest.mark.slow
@every_provider
def test_rate_limited_stream_is_retried_before_its_first_chunk(
    gateway_face: Face, case: Case, server: FakeServer, gateway: Gateway, clock: FakeClock
) -> None:
    server.fail_next(Fault.RATE_LIMIT)

    stream = gateway_face.stream(gateway, ask("Sing the ballad."))
    text = "".join(stream.pieces)

    assert text == said(case, "Sing the ballad.")
    assert clock.slept == [RETRY_AFTER]
    assert stream.reply is not None and stream.reply.retries == 1


# ---------------------------------------------------------------------- asyncio


@pytest.mark.slow
@every_provider
async def test_agenerate_answers_then_serves_the_repeat_from_the_cache(
    case: Case, server: FakeServer, tmp_path: Path, manager: PluginManager, clock: FakeClock
) -> None:
    gateway = open_gateway(make_config(case, server, tmp_path), manager, clock=clock)
    try:
        server.fail_next(Fault.RATE_LIMIT)
        first = await gateway.agenerate(ask("Which way to the keep?"))
        second = await gateway.agenerate(ask("Which way to the keep?"))
        streamed = [chunk async for chunk in gateway.astream(ask("And back again?"))]
    finally:
        await gateway.aclose()

    assert first.text == said(case, "Which way to the keep?")
    assert first.retries == 1 and clock.slept == [RETRY_AFTER]
    assert second.cache_hit and second.text == first.text
    assert "".join(streamed) == said(case, "And back again?")
    assert (len(server.requests), server.served) == (3, 2)


# ---------------------------------------------------------------------- secrets


@pytest.mark.slow
@keyed_providers
def test_api_key_never_reaches_ledger_cache_or_logs(
    gateway_face: Face,
    case: Case,
    server: FakeServer,
    tmp_path: Path,
    manager: PluginManager,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secret = SECRET_KEY.encode()
    with open_gateway(make_config(case, server, tmp_path), manager, clock=clock) as gateway:
        replies = [gateway_face.generate(gateway, ask("Whisper the password.")) for _ in range(2)]
        stream = gateway_face.stream(gateway, ask("Whisper it again."))
        server.fail_next(Fault.RATE_LIMIT)
        replies.append(gateway_face.generate(gateway, ask("Once more, after a wait.")))
        server.fail_next(Fault.UNAUTHORIZED)
        with pytest.raises(NonRetriableProviderError):
            gateway_face.generate(gateway, ask("Now with a bad key."))
        assert stream.reply is not None
        keys = {reply.key for reply in [*replies, stream.reply]}
        assert gateway.cache is not None
        values = [gateway.cache.get(key) for key in keys]
        fields = [request_fields(case.name, gateway.plan(ask("Whisper the password.")).request)]

    sent = server.requests[0].headers
    assert SECRET_KEY in (sent.get("authorization", "") + sent.get("x-goog-api-key", ""))
    assert len(values) == 3 and all(value and secret not in value for value in values)
    assert not any(SECRET_KEY in key for key in keys)
    assert SECRET_KEY not in json.dumps(fields, default=str)
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert any(path.name.startswith("ledger.sqlite") for path in files)
    assert [path.name for path in files if secret in path.read_bytes()] == []
    assert caplog.records, "nothing was logged, so nothing was checked"
    assert SECRET_KEY not in caplog.text
