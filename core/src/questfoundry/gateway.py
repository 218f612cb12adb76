"""The one pipeline every provider call goes through.

::

    role → resolve provider/model/params → canonical request → cache key
         → cache get ── hit ─────────────────────────────────────→ ledger(hit, saved $) → reply
         → single-flight: an identical request in flight? wait for its answer
         → budget (ledger, before anything is sent) → limiter (requests, estimated tokens)
         → provider call, retried on 429/5xx/network with backoff + jitter (each try is limited)
         → reconcile the limiter with real usage → price → ledger → cache set → reply

Backends (cache, limiter, cost models, providers) are plugins chosen by name in config.yml. A cache
that fails never fails a call: it is bypassed with one warning. Observers registered on the
``call_completed`` hook see every call.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import chain
from time import perf_counter
from typing import Any

from questfoundry.cached import CachedReply, decode, encode
from questfoundry.calls import CacheMode, CallEvent, Reply, Request
from questfoundry.config import Config
from questfoundry.default_plugins.roles import role_kind
from questfoundry.errors import ConfigError, RateLimitError
from questfoundry.interfaces import (
    BackendContext,
    CacheBackend,
    Chunk,
    Clock,
    CostModel,
    Kind,
    Limiter,
    Message,
    Provider,
    ProviderReply,
    ProviderRequest,
    RoleProvider,
    Usage,
)
from questfoundry.keys import canonical_fields, key_of
from questfoundry.ledger import Entry, Ledger
from questfoundry.limits import admission, budgets_from, estimate_usage, rates_from
from questfoundry.plugins import PluginManager
from questfoundry.pricing import fixed_prices_for
from questfoundry.retry import RetryPolicy

log = logging.getLogger("questfoundry.gateway")

DEFAULT_ROLE = "default"
DEFAULT_TTL = 86_400.0
DEFAULT_LEDGER = ".questfoundry/ledger.sqlite"
ZERO = Decimal(0)


def open_ledger(config: Config, clock: Clock | None = None) -> Ledger:
    """The ledger config.yml names (``pricing.ledger_path``), in ``rate_limiting.timezone``."""
    context = BackendContext(config.project_dir)
    return Ledger(
        context.resolve_path(config.get("pricing.ledger_path", DEFAULT_LEDGER)),
        clock=clock,
        timezone=config.get("rate_limiting.timezone", "UTC"),
    )


_MODES: dict[str, CacheMode] = {mode.value: mode for mode in CacheMode}


@dataclass(slots=True)
class Plan:
    """Everything decided about a request before anything is sent.

    The provider request and the token estimate are built only when a call is made, so a cache
    hit costs no more than its key.
    """

    provider: str
    model: str
    kind: Kind
    messages: Sequence[Message | Mapping[str, str]]
    prompt: str | None
    params: Mapping[str, Any]
    timeout: float | None
    role: str | None
    key: str
    read: bool
    write: bool
    ttl: float | None
    _request: ProviderRequest | None = None
    _estimate: Usage | None = None

    @property
    def request(self) -> ProviderRequest:
        if self._request is None:
            messages = tuple(
                m if isinstance(m, Message) else Message(m["role"], m["content"])
                for m in self.messages
            )
            self._request = ProviderRequest(
                self.model, messages, self.prompt, self.kind, self.params, self.timeout
            )
        return self._request

    @property
    def estimate(self) -> Usage:
        if self._estimate is None:
            request = self.request
            self._estimate = estimate_usage(request.messages, request.prompt, request.params)
        return self._estimate


class Flights:
    """Identical requests in flight in this process: the first makes the call, the rest wait."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, Future[Reply]] = {}

    def join(self, key: str) -> tuple[Future[Reply], bool]:
        """The flight for ``key`` and whether the caller leads it (and must settle it)."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Future()
            return flight, True

    def land(self, key: str) -> None:
        with self._lock:
            self._flights.pop(key, None)


class Gateway:
    """Caching, limits, budgets, retries and the ledger around every provider call.

    Build it from a loaded :class:`~questfoundry.config.Config` and a plugin manager; use
    :meth:`generate` / :meth:`agenerate` (and :meth:`stream` / :meth:`astream`), then :meth:`close`.
    """

    def __init__(
        self,
        config: Config,
        manager: PluginManager,
        *,
        clock: Clock | None = None,
        run_id: str | None = None,
    ) -> None:
        self.config = config
        self.manager = manager
        self.clock = clock or Clock()
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.context = BackendContext(config.project_dir, config.namespace, self.clock)
        data = config.data
        self._caching = config.section("caching")
        self._limits = config.section("rate_limiting")
        self.retry = RetryPolicy.from_settings(config.section("retry"))
        self.cache: CacheBackend | None = self._build_cache()
        self.limiter: Limiter | None = self._build_limiter()
        self.budgets = budgets_from(self._limits) if self._limits.get("enabled", True) else []
        self.on_limit = self._limits.get("on_limit", "wait")
        self.max_wait = float(self._limits.get("max_wait_seconds", 60))
        self.ledger = open_ledger(config, self.clock)
        self._flights = Flights()
        self._routes: dict[tuple[str, str | None, str | None], tuple[RoleProvider, Kind]] = {}
        self._providers: dict[tuple[str, str], Provider] = {}
        self._cost_models: dict[str, CostModel | None] = {}
        self._policies: dict[str, tuple[bool, float | None]] = {}
        self._warned: set[str] = set()
        self._observed = bool(manager.hook.call_completed.get_hookimpls())
        self._data = data
        self._check_budgets_can_be_priced()

    @classmethod
    def from_config(cls, config: Config, manager: PluginManager, **kwargs: Any) -> Gateway:
        return cls(config, manager, **kwargs)

    # ------------------------------------------------------------------ set-up

    def _build_cache(self) -> CacheBackend | None:
        if not self._caching.get("enabled", True):
            return None
        name = self._caching.get("backend", "memory")
        cache: CacheBackend = self.manager.create(
            "cache backend", name, self._caching, self.context
        )
        return cache

    def _build_limiter(self) -> Limiter | None:
        rates = rates_from(self._limits)
        if not self._limits.get("enabled", True) or not rates:
            return None
        name = self._limits.get("backend", "token_bucket")
        settings = {**self._limits, "rates": rates}
        limiter: Limiter = self.manager.create("limiter strategy", name, settings, self.context)
        return limiter

    def _configured_providers(self) -> set[str]:
        names: set[str] = set()
        for kind in ("text", "image"):
            section = self.config.get(f"providers.{kind}") or {}
            names.update(k for k in section if k != "default")
            if section.get("default"):
                names.add(section["default"])
        for role in (self.config.get("roles") or {}).values():
            if role and role.get("provider"):
                names.add(role["provider"])
        return names

    def _check_budgets_can_be_priced(self) -> None:
        """A budget over a provider nothing can price would silently count $0: refuse it now."""
        for budget in self.budgets:
            targets = [budget.scope] if budget.scope else sorted(self._configured_providers())
            for provider in targets:
                if self.cost_model(provider) is None:
                    scope = f"providers.{budget.scope}" if budget.scope else "global"
                    raise ConfigError(
                        f"a cost budget applies to provider {provider!r} but nothing can price it: "
                        f"install its pricing plugin or set cost_per_input_token and "
                        f"cost_per_output_token for it",
                        path=f"rate_limiting.{scope}.cost_per_{budget.period}",
                    )

    def cost_model(self, provider: str) -> CostModel | None:
        """Prices from config for ``provider``, else its cost model plugin, else None (unknown)."""
        if provider not in self._cost_models:
            model: CostModel | None = fixed_prices_for(self._data, provider)
            if model is None:
                name = self.config.get(f"pricing.providers.{provider}.cost_model")
                if name is not None or provider in self.manager.backends("cost model"):
                    settings = self.config.get(f"pricing.providers.{provider}") or {}
                    model = self.manager.create(
                        "cost model", name or provider, settings, self.context
                    )
            self._cost_models[provider] = model
        return self._cost_models[provider]

    def provider(self, name: str, kind: str = "text") -> Provider:
        """The (pooled) provider instance for ``name``; image roles see image settings on top."""
        handle = (name, kind)
        if handle not in self._providers:
            settings = dict(self.config.get(f"providers.text.{name}") or {})
            if kind == "image":
                settings.update(self.config.get(f"providers.image.{name}") or {})
            settings["kind"] = kind
            self._providers[handle] = self.manager.create("provider", name, settings, self.context)
        return self._providers[handle]

    # ------------------------------------------------------------------ planning

    def route(
        self, role: str | None, provider: str | None = None, model: str | None = None
    ) -> tuple[RoleProvider, Kind]:
        """Which provider, model and parameters a role uses, and its kind (text or image)."""
        handle = (role or DEFAULT_ROLE, provider, model)
        if handle not in self._routes:
            override = {k: v for k, v in (("provider", provider), ("model", model)) if v}
            resolved = self.manager.hook.resolve_role_provider(
                role=handle[0], config=self._data, override=override
            )
            self._routes[handle] = (resolved, role_kind(handle[0], self._data))
        return self._routes[handle]

    def plan(self, request: Request) -> Plan:
        """Resolve the role, decide how the cache is used and compute the key."""
        routed, kind = self.route(request.role, request.provider, request.model)
        params = {**routed.params, **request.params} if request.params else routed.params
        kind = request.kind or kind
        mode = _MODES.get(request.cache)
        if mode is None:
            choices = ", ".join(_MODES)
            raise ValueError(f"cache mode {request.cache!r} is not one of {choices}")
        enabled, ttl = self._cache_policy(routed.provider)
        key = ""
        if enabled:
            fields = canonical_fields(
                routed.provider, routed.model, kind, request.messages, request.prompt, params
            )
            key = key_of(self.context.namespace, fields)
        return Plan(
            provider=routed.provider,
            model=routed.model,
            kind=kind,
            messages=request.messages,
            prompt=request.prompt,
            params=params,
            timeout=request.timeout,
            role=request.role,
            key=key,
            read=enabled and mode in (CacheMode.DEFAULT, CacheMode.NO_STORE),
            write=enabled and mode in (CacheMode.DEFAULT, CacheMode.REFRESH),
            ttl=request.cache_ttl if request.cache_ttl is not None else ttl,
        )

    def _cache_policy(self, provider: str) -> tuple[bool, float | None]:
        """Whether ``provider``'s replies are cached, and for how long."""
        if provider not in self._policies:
            own = (self._caching.get("per_provider") or {}).get(provider) or {}
            enabled = self.cache is not None and own.get("enabled", True)
            ttl = own.get("ttl_seconds", self._caching.get("ttl_seconds", DEFAULT_TTL))
            self._policies[provider] = (bool(enabled), ttl)
        return self._policies[provider]

    # ------------------------------------------------------------------ cache

    def _warn_once(self, topic: str, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            log.warning(message)

    def _cached(self, plan: Plan) -> CachedReply | None:
        """The cached reply for ``plan``; None on a miss, an unreadable entry or a broken cache."""
        assert self.cache is not None
        try:
            raw = self.cache.get(plan.key)
        except Exception as exc:
            self._warn_once("cache-read", f"cache read failed, calling the provider: {exc}")
            return None
        if raw is None:
            return None
        cached = decode(raw)
        if cached is None:
            self._warn_once("cache-corrupt", f"ignoring an unreadable cache entry {plan.key}")
        return cached

    def _lookup(self, plan: Plan, started: float) -> Reply | None:
        """A cache hit, recorded as one; None on a miss."""
        cached = self._cached(plan)
        if cached is None:
            return None
        reply = self._reply(plan, cached, started, cache_hit=True)
        self._record_saved(reply)
        return reply

    def _store(self, plan: Plan, cached: CachedReply) -> None:
        assert self.cache is not None
        try:
            self.cache.set(plan.key, encode(cached), plan.ttl)
        except Exception as exc:
            self._warn_once("cache-write", f"cache write failed, reply not cached: {exc}")

    def _reply(self, plan: Plan, cached: CachedReply, started: float, **flags: Any) -> Reply:
        text = cached.text
        if text is None and cached.chunks is not None:
            text = "".join(cached.chunks)
        return Reply(
            provider=plan.provider,
            model=cached.model,
            text=text,
            image=cached.image,
            usage=cached.usage,
            cost=ZERO,
            saved=cached.cost,
            latency=perf_counter() - started,
            role=plan.role,
            key=plan.key,
            **flags,
        )

    def _record_saved(self, reply: Reply) -> None:
        """A hit or a coalesced reply: nothing spent, the original cost saved (buffered write)."""
        self.ledger.record_hit(
            Entry(
                provider=reply.provider,
                model=reply.model,
                role=reply.role,
                run_id=self.run_id,
                input_tokens=reply.usage.input_tokens,
                output_tokens=reply.usage.output_tokens,
                cached_input_tokens=reply.usage.cached_input_tokens,
                cost=ZERO,
                cache_hit=True,
                saved=reply.saved,
                latency=reply.latency,
            )
        )
        self._notify(reply)

    # ------------------------------------------------------------------ limits

    def _reserve(self, plan: Plan) -> int | None:
        if not self.budgets:
            return None
        estimate = self._price(plan.provider, plan.request.model, plan.estimate)
        return self.ledger.reserve(plan.provider, estimate or ZERO, self.budgets)

    def _admission(self, plan: Plan) -> tuple[dict[str, float], float]:
        """What to take from the limiter now; a wait of 0.0 when admitted."""
        amounts = admission(plan.provider, plan.estimate.total_tokens)
        assert self.limiter is not None
        return amounts, self.limiter.acquire(amounts)

    def _too_long(self, plan: Plan, wait: float, waited: float) -> RateLimitError | None:
        if self.on_limit == "raise" or math.isinf(wait) or waited + wait > self.max_wait:
            return RateLimitError(f"rate limit reached for {plan.provider}", retry_after=wait)
        return None

    def _admit(self, plan: Plan) -> float:
        """Wait (sleeping) until the limiter admits one attempt; return the seconds waited."""
        waited = 0.0
        while self.limiter is not None:
            _, wait = self._admission(plan)
            if not wait:
                break
            error = self._too_long(plan, wait, waited)
            if error:
                raise error
            self.clock.sleep(wait)
            waited += wait
        return waited

    async def _aadmit(self, plan: Plan) -> float:
        waited = 0.0
        while self.limiter is not None:
            _, wait = self._admission(plan)
            if not wait:
                break
            error = self._too_long(plan, wait, waited)
            if error:
                raise error
            await self.clock.asleep(wait)
            waited += wait
        return waited

    # ------------------------------------------------------------------ finishing

    def _price(self, provider: str, model: str, usage: Usage) -> Decimal | None:
        cost_model = self.cost_model(provider)
        cost = None if cost_model is None else cost_model.price(model, usage)
        if cost is None:
            self._warn_once(
                f"price:{provider}:{model}",
                f"no price known for {provider} model {model!r}; its cost is recorded as unknown",
            )
        return cost

    def _finish(
        self,
        plan: Plan,
        answer: ProviderReply,
        reservation: int | None,
        started: float,
        waited: float,
        retries: int,
        chunks: tuple[str, ...] | None = None,
        store: bool = True,
    ) -> Reply:
        usage = answer.usage
        if self.limiter is not None:
            extra = float(usage.total_tokens - plan.estimate.total_tokens)
            self.limiter.adjust({"global/tokens": extra, f"provider:{plan.provider}/tokens": extra})
        cost = self._price(plan.provider, plan.request.model, usage)
        latency = perf_counter() - started
        self.ledger.record(
            Entry(
                provider=plan.provider,
                model=plan.request.model,
                role=plan.role,
                run_id=self.run_id,
                input_tokens=usage.input_tokens,
                output_tokens=usage.output_tokens,
                cached_input_tokens=usage.cached_input_tokens,
                cost=cost,
                latency=latency,
                retries=retries,
                waited=waited,
            ),
            reservation,
        )
        if plan.write and store:
            cached = CachedReply(
                answer.model, answer.text, answer.image, usage, cost, answer.finish_reason, chunks
            )
            self._store(plan, cached)
        reply = Reply(
            provider=plan.provider,
            model=answer.model or plan.request.model,
            text=answer.text,
            image=answer.image,
            usage=usage,
            cost=cost,
            retries=retries,
            waited=waited,
            latency=latency,
            role=plan.role,
            key=plan.key,
        )
        self._notify(reply)
        return reply

    def _notify(self, reply: Reply | None, plan: Plan | None = None, error: Any = None) -> None:
        if not self._observed:
            return
        provider = reply.provider if reply else plan.provider if plan else ""
        model = reply.model if reply else plan.request.model if plan else ""
        role = reply.role if reply else plan.role if plan else None
        try:
            self.manager.hook.call_completed(event=CallEvent(provider, model, role, reply, error))
        except Exception:
            log.exception("a call_completed observer failed")

    # ------------------------------------------------------------------ sync

    def generate(self, request: Request) -> Reply:
        """Answer ``request`` from the cache, or from its provider through limits and retries."""
        started = perf_counter()
        plan = self.plan(request)
        if plan.read and (hit := self._lookup(plan, started)):
            return hit
        if not plan.key:
            return self._call(plan, started)
        flight, leader = self._flights.join(plan.key)
        if not leader:
            return self._coalesced(plan, flight.result(), started)
        try:
            reply = (plan.read and self._lookup(plan, started)) or self._call(plan, started)
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        finally:
            self._flights.land(plan.key)
        flight.set_result(reply)
        return reply

    def _coalesced(self, plan: Plan, reply: Reply, started: float) -> Reply:
        out = replace(
            reply,
            coalesced=True,
            cost=ZERO,
            saved=reply.saved if reply.cache_hit else reply.cost,
            latency=perf_counter() - started,
            role=plan.role,
        )
        self._record_saved(out)
        return out

    def _call(self, plan: Plan, started: float) -> Reply:
        provider = self.provider(plan.provider, plan.request.kind)
        reservation = self._reserve(plan)
        waited = 0.0
        try:
            for attempt in self.retry.retrying(self.clock):
                with attempt:
                    waited += self._admit(plan)
                    answer = provider.generate(plan.request)
        except BaseException as exc:
            self.ledger.release(reservation)
            self._notify(None, plan, exc)
            raise
        retries = attempt.retry_state.attempt_number - 1
        return self._finish(plan, answer, reservation, started, waited, retries)

    # ------------------------------------------------------------------ async

    async def agenerate(self, request: Request) -> Reply:
        """:meth:`generate` for asyncio: waits with ``asyncio.sleep``, never blocks on a limit."""
        started = perf_counter()
        plan = self.plan(request)
        if plan.read and (hit := self._lookup(plan, started)):
            return hit
        if not plan.key:
            return await self._acall(plan, started)
        flight, leader = self._flights.join(plan.key)
        if not leader:
            return self._coalesced(plan, await asyncio.wrap_future(flight), started)
        try:
            reply = (plan.read and self._lookup(plan, started)) or await self._acall(plan, started)
        except BaseException as exc:
            flight.set_exception(exc)
            raise
        finally:
            self._flights.land(plan.key)
        flight.set_result(reply)
        return reply

    async def _acall(self, plan: Plan, started: float) -> Reply:
        provider = self.provider(plan.provider, plan.request.kind)
        reservation = await asyncio.to_thread(self._reserve, plan)
        waited = 0.0
        try:
            async for attempt in self.retry.aretrying(self.clock):
                with attempt:
                    waited += await self._aadmit(plan)
                    answer = await provider.agenerate(plan.request)
        except BaseException as exc:
            self.ledger.release(reservation)
            self._notify(None, plan, exc)
            raise
        retries = attempt.retry_state.attempt_number - 1
        return await asyncio.to_thread(
            self._finish, plan, answer, reservation, started, waited, retries
        )

    # ------------------------------------------------------------------ streaming

    def stream(self, request: Request) -> Stream:
        """Text chunks as they arrive (replayed on a hit); ``.reply`` once the stream is done."""
        return Stream(self, request)

    def astream(self, request: Request) -> AsyncStream:
        return AsyncStream(self, request)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close every provider and backend and flush the ledger."""
        for provider in self._providers.values():
            provider.close()
        self._providers.clear()
        if self.cache is not None:
            self.cache.close()
        if self.limiter is not None:
            self.limiter.close()
        self.ledger.close()

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
        self._providers.clear()
        self.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _StreamBase:
    """What a sync and an async stream share: the plan, the hit check and the bookkeeping."""

    def __init__(self, gateway: Gateway, request: Request) -> None:
        self.gateway = gateway
        self.started = perf_counter()
        self.plan = gateway.plan(request)
        self.reply: Reply | None = None
        self._chunks: list[str] = []
        self._usage: Usage | None = None
        self._retries = 0

    def _hit(self) -> tuple[str, ...] | None:
        """The chunks to replay on a cache hit, or None on a miss."""
        gateway, plan = self.gateway, self.plan
        cached = gateway._cached(plan) if plan.read else None
        if cached is None:
            return None
        self.reply = gateway._reply(plan, cached, self.started, cache_hit=True)
        gateway._record_saved(self.reply)
        return cached.chunks if cached.chunks is not None else (cached.text or "",)

    def _take(self, chunk: Chunk) -> str:
        if chunk.usage is not None:
            self._usage = chunk.usage
        if chunk.text:
            self._chunks.append(chunk.text)
        return chunk.text

    def _complete(self, reservation: int | None, waited: float, store: bool = True) -> Reply:
        """Record the call; cache it only when ``store`` (the stream ran to its end)."""
        plan = self.plan
        usage = self._usage or Usage(
            plan.estimate.input_tokens, len("".join(self._chunks)) // 4 + 1
        )
        text = "".join(self._chunks)
        answer = ProviderReply(plan.request.model, text=text, usage=usage)
        chunks = tuple(self._chunks)
        self.reply = self.gateway._finish(
            plan, answer, reservation, self.started, waited, self._retries, chunks, store
        )
        return self.reply


class Stream(_StreamBase):
    """A streamed call: iterate for text; a stream abandoned part-way is never cached."""

    def __iter__(self) -> Iterator[str]:
        replay = self._hit()
        if replay is not None:
            yield from replay
            return
        gateway, plan = self.gateway, self.plan
        provider = gateway.provider(plan.provider, plan.request.kind)
        reservation = gateway._reserve(plan)
        waited = 0.0
        try:
            # Retried like any call until the first chunk arrives; never once text was yielded.
            for attempt in gateway.retry.retrying(gateway.clock):
                with attempt:
                    waited += gateway._admit(plan)
                    chunks = iter(provider.stream(plan.request))
                    first = next(chunks, None)
            self._retries = attempt.retry_state.attempt_number - 1
            for chunk in chain((first,) if first else (), chunks):
                if text := self._take(chunk):
                    yield text
        except GeneratorExit:  # abandoned by the caller: spent, but never cached
            self._complete(reservation, waited, store=False)
            raise
        except BaseException:
            gateway.ledger.release(reservation)
            raise
        self._complete(reservation, waited)


class AsyncStream(_StreamBase):
    """The asyncio twin of :class:`Stream`."""

    async def __aiter__(self) -> AsyncIterator[str]:
        replay = self._hit()
        if replay is not None:
            for text in replay:
                yield text
            return
        gateway, plan = self.gateway, self.plan
        provider = gateway.provider(plan.provider, plan.request.kind)
        reservation = await asyncio.to_thread(gateway._reserve, plan)
        waited = 0.0
        try:
            async for attempt in gateway.retry.aretrying(gateway.clock):
                with attempt:
                    waited += await gateway._aadmit(plan)
                    chunks = aiter(provider.astream(plan.request))
                    first = await anext(chunks, None)
            self._retries = attempt.retry_state.attempt_number - 1
            if first is not None and (text := self._take(first)):
                yield text
            async for chunk in chunks:
                if text := self._take(chunk):
                    yield text
        except GeneratorExit:  # abandoned: no awaiting here, the loop may be closing
            self._complete(reservation, waited, store=False)
            raise
        except BaseException:
            gateway.ledger.release(reservation)
            raise
        await asyncio.to_thread(self._complete, reservation, waited)
