"""Cross-process single flight: a cache with flight locks makes identical calls wait for one.

"Another process" is played by the test's cache: it holds a key's lock and, when told, stores the
answer and releases it. The fake clock makes every poll instant, so a wait costs no real time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from questfoundry.builtins.memory_cache import MemoryCache
from questfoundry.contracts.errors import NonRetriableProviderError
from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.contracts.protocols import Capability
from questfoundry.contracts.records import Reply, Request
from questfoundry.gateway import Gateway
from questfoundry.gateway.codec import encode
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.faces import Face
from questfoundry.testing.scripted import ScriptedProvider

MakeGateway = Callable[..., Gateway]
OTHER = "other-process"


class LockingCache(MemoryCache):
    """A memory cache with flight locks, one of whose keys "another process" may hold."""

    capabilities = frozenset({*MemoryCache.capabilities, Capability.LOCKS})

    def __init__(self) -> None:
        super().__init__()
        self.holders: dict[str, str] = {}
        self.attempts = 0
        #: called on every lock attempt, to let "the other process" act
        self.on_attempt: Callable[[str], None] = lambda key: None
        self.unusable = False

    def lock(self, key: str, ttl: float) -> str | None:
        self.attempts += 1
        self.on_attempt(key)
        if self.unusable:
            return ""
        if key in self.holders:
            return None
        token = self.holders[key] = f"token-{self.attempts}"
        return token

    def unlock(self, key: str, token: str) -> None:
        if self.holders.get(key) == token:
            del self.holders[key]


class Plugin:
    def __init__(self) -> None:
        self.cache = LockingCache()

    @hookimpl
    def cache_backends(self) -> dict[str, Any]:
        return {"locking": lambda settings, context: self.cache}


@pytest.fixture
def plugin() -> Plugin:
    return Plugin()


@pytest.fixture
def make(make_gateway: MakeGateway, plugin: Plugin) -> Callable[..., Gateway]:
    def build(**caching: Any) -> Gateway:
        return make_gateway({"caching": {"backend": "locking", **caching}}, ("locking", plugin))

    return build


def ask(text: str = "a new prompt") -> Request:
    return Request(messages=[{"role": "user", "content": text}])


def other_answers(gateway: Gateway, cache: LockingCache, after: int, text: str) -> None:
    """The other process holds the lock; on lock attempt ``after`` it stores ``text`` and leaves."""
    key = gateway.plan(ask()).key
    cache.holders[key] = OTHER

    def act(seen: str) -> None:
        if seen == key and cache.attempts == after and cache.holders.get(key) == OTHER:
            reply = Reply(provider="scripted", model="m1", text=text)
            cache.set(key, encode(reply))
            del cache.holders[key]

    cache.on_attempt = act


def test_a_call_waits_for_the_answer_of_another_process(
    make: MakeGateway, plugin: Plugin, provider: ScriptedProvider, gateway_face: Face
) -> None:
    gateway = make()
    other_answers(gateway, plugin.cache, after=5, text="answered elsewhere")
    reply = gateway_face.generate(gateway, ask())
    assert reply.text == "answered elsewhere"
    assert reply.cache_hit
    assert provider.calls == 0
    assert plugin.cache.holders == {}  # the lock taken to re-read was given back


def test_a_caller_who_waited_too_long_calls_itself(
    make: MakeGateway, plugin: Plugin, provider: ScriptedProvider, clock: FakeClock,
    gateway_face: Face,
) -> None:  # fmt: skip
    gateway = make(coalesce_seconds=5)
    key = gateway.plan(ask()).key
    plugin.cache.holders[key] = OTHER  # held by a process that never answers
    started = clock.monotonic()
    reply = gateway_face.generate(gateway, ask())
    assert provider.calls == 1
    assert not reply.cache_hit
    assert clock.monotonic() - started >= 5
    assert plugin.cache.holders == {key: OTHER}  # never released by anyone but its holder


def test_the_lock_holder_calls_stores_then_releases(
    make: MakeGateway, plugin: Plugin, provider: ScriptedProvider, gateway_face: Face
) -> None:
    gateway = make()
    reply = gateway_face.generate(gateway, ask())
    assert provider.calls == 1
    assert plugin.cache.attempts == 1
    assert plugin.cache.holders == {}
    assert plugin.cache.get(reply.key) is not None


def test_a_failed_call_releases_the_lock(
    make: MakeGateway, plugin: Plugin, provider: ScriptedProvider, gateway_face: Face
) -> None:
    provider.script.append(NonRetriableProviderError("refused", provider="scripted"))
    gateway = make()
    with pytest.raises(NonRetriableProviderError):
        gateway_face.generate(gateway, ask())
    assert plugin.cache.holders == {}  # the next caller need not wait for it to expire
    assert gateway_face.generate(gateway, ask()).text == "echo: a new prompt"


def test_unusable_locks_or_coalescing_off_call_at_once(
    make: MakeGateway, plugin: Plugin, provider: ScriptedProvider, gateway_face: Face
) -> None:
    plugin.cache.unusable = True
    gateway_face.generate(make(), ask("one"))
    assert (provider.calls, plugin.cache.attempts) == (1, 1)
    plugin.cache.unusable = False
    gateway_face.generate(make(coalesce_seconds=0), ask("two"))
    assert (provider.calls, plugin.cache.attempts) == (2, 1)  # no lock asked for
