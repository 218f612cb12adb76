"""Structured replies are read within bounds and a bad one never stays cached (issue 19, items 2
and 5): one short line, and a re-run asks afresh.

Before: a reply nested 200,000 levels deep (400 KB) crashed ``run`` with a ``RecursionError``
traceback and stayed in the cache, so every re-run against a healthy server crashed the same way
until ``cache clear`` (and once the gateway stored replies after answering, the eviction could
run before the store: 1 re-run in 5 failed so on the file cache); a rejected reply of 50,000
sections gave a 4.8 MB "one-line" error, and the retry prompt quoted it whole.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from questfoundry.book.shape import draft_schema
from questfoundry.builtins.memory_cache import MemoryCache
from questfoundry.config import Config
from questfoundry.contracts.backends import Backend
from questfoundry.contracts.bounded import depth
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.protocols import Capability
from questfoundry.contracts.records import ProviderReply, ProviderRequest
from questfoundry.contracts.structured import MAX_MESSAGE, RESPONSE_SCHEMA, ShapeError, parse_reply
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner, StepError
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.scripted import ScriptedProvider, scripted_plugin

DEEP = "[" * 200_000 + "]" * 200_000
SECTION = {"title": "t", "summary": "x" * 40, "ending": False, "choices": []}
HUGE = json.dumps({"title": "T", "sections": [SECTION] * 50_000})  # 4.8 MB
LARGE = json.dumps({"title": "T", "sections": [SECTION] * 2_000})  # 190 KB
SCHEMA = draft_schema(2, titled=True)


class Broken(ScriptedProvider):
    """Answers every structured request with ``text`` until it is mended (``text`` None)."""

    text: str | None = None

    def _next(self, request: ProviderRequest) -> ProviderReply:
        if self.text is None or RESPONSE_SCHEMA not in request.params:
            return super()._next(request)
        self.requests.append(request)
        return ProviderReply(request.model, text=self.text)


@pytest.fixture
def provider() -> Broken:
    return Broken()


class SlowCache(MemoryCache):
    """A cache that blocks (so the gateway stores replies after answering, on its deferred
    thread) and takes its time to store a large reply: what a file or Redis cache may do."""

    capabilities = MemoryCache.capabilities - {Capability.NON_BLOCKING}

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if len(value) > 100_000:
            time.sleep(0.3)
        super().set(key, value, ttl)


class SlowCachePlugin:
    @hookimpl
    def cache_backends(self) -> dict[str, Backend]:
        return {"slow": Backend(lambda settings, context: SlowCache())}


@pytest.fixture
def showrunner(tmp_path: Path, provider: ScriptedProvider) -> Iterator[Showrunner]:
    config = Config(
        {
            "providers": {"text": {"default": "scripted", "scripted": {"model": "m1"}}},
            "caching": {"backend": "slow"},
            "retry": {"max_retries": 0},
        },
        None,
        tmp_path / ".questfoundry",
    )
    plugins = [scripted_plugin(provider), ("test-slow-cache", SlowCachePlugin())]
    manager = get_plugin_manager(entry_points=False, plugins=plugins)
    made = Showrunner.from_config(config, manager, clock=FakeClock())
    yield made
    made.close()


@pytest.mark.parametrize(
    ("reply", "said"),
    [(DEEP, "the JSON nests deeper than 64 levels"), (HUGE, "the JSON is larger than 1 MiB")],
    ids=["200000 deep", "50000 sections"],
)
def test_a_reply_past_its_bounds_is_refused_unread_in_one_short_line(reply: str, said: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ShapeError) as caught:
        parse_reply(reply, SCHEMA)
    assert time.perf_counter() - started < 1
    assert str(caught.value) == f"the reply is refused unread: {said}"


def test_a_reply_nested_to_the_bound_is_read_and_one_level_more_is_not() -> None:
    assert depth(parse_reply("[" * 64 + "]" * 64, {"type": "array"}), 100) == 64
    with pytest.raises(ShapeError, match="nests deeper than 64 levels"):
        parse_reply("[" * 65 + "]" * 65, {"type": "array"})


@pytest.mark.slow
def test_a_rejected_reply_of_2000_sections_is_named_not_quoted() -> None:
    with pytest.raises(ShapeError) as caught:
        parse_reply(LARGE, SCHEMA)
    message = str(caught.value)
    assert len(message) <= MAX_MESSAGE and "\n" not in message
    assert "at sections: a list of 2000 items breaks maxItems 2" in message


def test_a_reply_read_again_is_held_to_the_schema_it_is_read_against() -> None:
    # a reply found valid once is not validated again (a run answered by the cache): only
    # against the same schema
    reply = '{"title": "The Lamp"}'
    titled = {"type": "object", "required": ["title"]}
    numbered = {"type": "object", "required": ["number"]}
    for _ in range(2):
        assert parse_reply(reply, titled) == {"title": "The Lamp"}
        with pytest.raises(ShapeError, match="number"):
            parse_reply(reply, numbered)
    assert parse_reply(reply, titled) is not parse_reply(reply, titled)  # each caller's own


def test_a_key_named_twice_in_a_reply_is_asked_about() -> None:
    with pytest.raises(ShapeError, match="names the key 'title' twice"):
        parse_reply('{"title": "a", "title": "b"}', {"type": "object"})


def failed_step(showrunner: Showrunner, provider: Broken, reply: str) -> str:
    """The one-line error of a story_spark run whose structured replies are all ``reply``."""
    provider.text = reply
    with pytest.raises(StepError) as failure:
        showrunner.run("story_spark", sections=2)
    message = str(failure.value)
    assert len(message) < 500 and "\n" not in message
    return message


@pytest.mark.slow
def test_a_deep_reply_fails_the_step_in_one_line_and_never_stays_cached(
    showrunner: Showrunner, provider: Broken
) -> None:
    assert "nests deeper than 64 levels" in failed_step(showrunner, provider, DEEP)
    provider.text = None  # the server is healthy again: the step asks afresh, and succeeds
    report = showrunner.run("story_spark", sections=2)
    assert report.resumed
    assert showrunner.runtime.state.get("book/topology") is not None


@pytest.mark.slow
def test_a_large_rejected_reply_keeps_the_retry_prompt_and_the_error_short(
    showrunner: Showrunner, provider: Broken
) -> None:
    assert "a list of 2000 items breaks maxItems 2" in failed_step(showrunner, provider, LARGE)
    first, retry = (r.messages[-1].content for r in provider.requests if r.params)
    assert len(retry) < len(first) + 5_000
