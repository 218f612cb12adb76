"""The one pipeline: every decision of a call, written once for both faces.

::

    plan → cache get ── hit ─────────────────────────────────────────→ ledger(hit, saved $) → reply
         → single flight: an identical request in flight? wait for its answer
         → shared flight (a cache with locks): another process calling for it? wait for its
           answer to reach the cache (``caching.coalesce_seconds`` at most), else take the lock
         → budget: reserve the estimate (refused before anything is sent)
         → limiter: requests and estimated tokens (wait or raise), again before every attempt
         → provider attempt, retried on 429/5xx/network with backoff + jitter, within a deadline
         → reconcile the limiter → price → ledger (settles the reservation) → cache set → reply

Each step is a generator that yields :mod:`~questfoundry.gateway.effects` for its driver to carry
out (sync in place, async awaited, blocking backend I/O on a worker thread). Observers
(``call_completed``) are called here, once per call, for every ending — so on the caller's thread
or task. A cache or ledger that fails never fails a call: it is bypassed with one warning, and a
reply the provider answered is always returned.
"""

from __future__ import annotations

import logging
import math
import random
from dataclasses import replace
from decimal import Decimal
from time import perf_counter
from typing import TYPE_CHECKING, Any

from questfoundry.contracts.errors import (
    ConfigError,
    ProviderError,
    RateLimitError,
    RetriableProviderError,
)
from questfoundry.contracts.protocols import Capability, FlightLocking, Provider
from questfoundry.contracts.records import CallEvent, Chunk, Outcome, ProviderReply, Reply, Usage
from questfoundry.gateway.admission import admission
from questfoundry.gateway.codec import HitDecoder, encode
from questfoundry.gateway.effects import (
    DONE,
    Blocking,
    Call,
    Emit,
    Join,
    NextChunk,
    OpenStream,
    Sleep,
    Steps,
    Twin,
    blocking,
)
from questfoundry.gateway.flights import Flights
from questfoundry.gateway.plan import Plan, Planner

if TYPE_CHECKING:
    from questfoundry.runtime import Runtime

log = logging.getLogger("questfoundry.gateway")

ZERO = Decimal(0)
#: seconds between two looks in the cache while another process calls for the same key
POLL_SECONDS = 0.02
#: at most this much (and 20 % of the wait) is added at random to a wait on a limit, so callers
#: refused together do not all wake at one instant: the next free slot goes to a random one of
#: them, not always to the process the scheduler wakes first. ``max_wait_seconds`` counts the
#: waits the limiter asked for, never the jitter
LIMIT_JITTER_SECONDS = 0.02


class Abandoned(Exception):
    """Thrown into a stream's steps when its caller stops reading."""


class Pipeline:
    """The steps of a call over one runtime's backends."""

    def __init__(self, runtime: Runtime, planner: Planner) -> None:
        self.runtime = runtime
        self.planner = planner
        self.flights: Flights[Reply] = Flights()
        limits = runtime.config.section("rate_limiting")
        self.on_limit = limits.get("on_limit", "wait")
        self.max_wait = float(limits.get("max_wait_seconds", 60))
        self.coalesce = float(runtime.config.section("caching").get("coalesce_seconds", 30))
        self._observed = bool(runtime.manager.hook.call_completed.get_hookimpls())
        self._warned: set[str] = set()
        self._decode = HitDecoder()

    # ------------------------------------------------------------------ calls

    def call(self, plan: Plan, started: float, landings: int | None = None) -> Steps[Reply]:
        """A whole call: the cache, the flight, then the provider.

        ``landings`` is given when the caller has already looked in the cache (with
        :meth:`lookup_now`, when ``flights.landings`` was that value); the cache is read once.
        """
        if landings is None:
            landings = self.flights.landings
            if plan.read and (hit := (yield from self._lookup(plan, started))):
                return hit
        if not plan.key:
            return (yield from self._miss(plan, started))
        flight, leader = self.flights.join(plan.key)
        if not leader:
            try:
                first = yield Join(flight)
            except BaseException as exc:
                self._notify(plan, None, exc, Outcome.ERROR)
                raise
            return self._coalesced(plan, first, started)
        reply: Reply | None = None
        error: BaseException | None = None
        try:
            if plan.read and self.flights.landings != landings:  # it may be cached by now
                reply = yield from self._lookup(plan, started)
            if reply is None:
                reply = yield from self._shared_flight(plan, started)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.flights.land(plan.key, flight, reply, error)
        return reply

    def _shared_flight(self, plan: Plan, started: float) -> Steps[Reply]:
        """The miss, led or followed across processes when the cache has flight locks.

        Until this caller takes the key's lock it polls the cache: another process calling for
        the same key stores its answer there (a hit here). The lock's holder re-reads once after
        taking it (the answer may have landed just before), calls, stores, then releases it. After
        ``coalesce_seconds`` without the lock the caller calls anyway; a holder killed mid-call
        frees the lock when it expires.
        """
        cache = self.runtime.cache
        if (
            cache is None
            or not (plan.read and plan.write and self.coalesce > 0)
            or Capability.LOCKS not in cache.capabilities
        ):
            return (yield from self._miss(plan, started))
        locks: FlightLocking = cache  # type: ignore[assignment]
        clock = self.runtime.clock
        give_up = clock.monotonic() + self.coalesce
        while (token := (yield blocking(cache, locks.lock, plan.key, self.coalesce))) is None:
            if clock.monotonic() >= give_up:
                token = ""
                break
            yield Sleep(POLL_SECONDS, clock)
        if token:
            hit = self._hit(plan, (yield blocking(cache, self._read, plan)), started)
            if hit is not None:
                yield blocking(cache, locks.unlock, plan.key, token)
                return hit
        try:
            reply = yield from self._miss(plan, started)
        except GeneratorExit:
            if token:
                locks.unlock(plan.key, token)
            raise
        except BaseException:
            if token:
                yield blocking(cache, locks.unlock, plan.key, token)
            raise
        if token:
            yield blocking(cache, locks.unlock, plan.key, token)
        return reply

    def stream(self, plan: Plan, started: float) -> Steps[Reply]:
        """A streamed call: yields :class:`Emit` for each piece of text, replayed on a hit."""
        if plan.read and (hit := (yield from self._lookup(plan, started))):
            try:
                for piece in hit.chunks if hit.chunks is not None else (hit.text or "",):
                    yield Emit(piece)
            except Abandoned:
                pass  # a replay costs nothing: the hit is already recorded
            return hit
        hold, provider = None, None
        try:
            provider = yield from self._provider(plan)
            hold = yield from self._reserve(plan)
            opened, waits, retries = yield from self._attempts(plan, provider, stream=True)
        except BaseException as exc:
            yield from self._release(hold)
            self._notify(plan, None, exc, Outcome.ERROR)
            raise
        chunks, chunk = opened
        pieces: list[str] = []
        usage: Usage | None = None
        outcome = Outcome.STREAM_FINISHED
        try:
            while chunk is not DONE and chunk is not None:
                assert isinstance(chunk, Chunk)
                usage = chunk.usage or usage
                if chunk.text:
                    pieces.append(chunk.text)
                    yield Emit(chunk.text)
                chunk = yield NextChunk(chunks)
        except Abandoned:
            outcome = Outcome.STREAM_ABANDONED
        except GeneratorExit:  # collected unread: nothing more may be yielded
            raise
        except BaseException as exc:
            yield from self._release(hold)
            self._notify(plan, None, exc, Outcome.STREAM_FAILED)
            raise
        text = "".join(pieces)
        usage = usage or Usage(plan.estimate.input_tokens, len(text) // 4 + 1)
        answer = ProviderReply(plan.model, text=text, usage=usage)
        reply = self._reply(plan, answer, started, waits, retries)
        reply.chunks = tuple(pieces)
        finished = outcome is Outcome.STREAM_FINISHED
        yield from self._settle(plan, reply, hold, store=finished)
        self._notify(plan, reply, None, outcome)
        return reply

    # ------------------------------------------------------------------ cache

    def can_look_now(self, asynchronous: bool) -> bool:
        """Whether a face may call :meth:`lookup_now` itself instead of yielding an effect:
        the cache and ledger are built, and (under asyncio) the cache never blocks."""
        built = vars(self.runtime)  # the backends already built (cached properties)
        if "cache" not in built or "ledger" not in built:
            return False
        return not asynchronous or Capability.NON_BLOCKING in built["cache"].capabilities

    def lookup_now(self, plan: Plan, started: float) -> Reply | None:
        """The cache hit for ``plan``, read in place (see :meth:`can_look_now`)."""
        return self._hit(plan, self._read(plan), started)

    def _lookup(self, plan: Plan, started: float) -> Steps[Reply | None]:
        """:meth:`lookup_now` as steps: the read is an effect, built backends first."""
        cache = yield from self._backend("cache")
        if Capability.ASYNC_GET in cache.capabilities:
            raw = yield Twin(self._read, self._aread, (plan,))
        else:
            raw = yield blocking(cache, self._read, plan)
        yield from self._backend("ledger")
        return self._hit(plan, raw, started)

    def _read(self, plan: Plan) -> bytes | None:
        """The cached bytes; None on a miss, or when the cache fails (warned once)."""
        try:
            return self.runtime.cache.get(plan.key)  # type: ignore[union-attr]
        except Exception as exc:
            self._read_failed(exc)
            return None

    async def _aread(self, plan: Plan) -> bytes | None:
        """:meth:`_read` through the cache's ``aget`` (``Capability.ASYNC_GET``)."""
        try:
            raw: bytes | None = await self.runtime.cache.aget(plan.key)  # type: ignore[union-attr]
        except Exception as exc:
            self._read_failed(exc)
            return None
        return raw

    def _read_failed(self, exc: Exception) -> None:
        self._warn_once("cache-read", f"cache read failed, calling the provider: {exc}")

    def _hit(self, plan: Plan, raw: bytes | None, started: float) -> Reply | None:
        """The hit in ``raw``, recorded and observed as one; None for nothing or a broken entry."""
        if raw is None:
            return None
        reply = self._decode(raw, plan.provider)
        if reply is None:
            self._warn_once("cache-corrupt", f"ignoring an unreadable cache entry {plan.key}")
            return None
        reply.role, reply.key, reply.run_id = plan.role, plan.key, self.runtime.run_id
        reply.latency = perf_counter() - started
        self._recorded_hit(reply)
        self._notify(plan, reply, None, Outcome.HIT)
        return reply

    def _store(self, plan: Plan, reply: Reply) -> Steps[None]:
        cache = self.runtime.cache
        assert cache is not None
        try:
            yield blocking(cache, cache.set, plan.key, encode(reply), plan.ttl)
        except Exception as exc:
            self._warn_once("cache-write", f"cache write failed, reply not cached: {exc}")

    def _coalesced(self, plan: Plan, first: Reply, started: float) -> Reply:
        """The leader's reply for a follower: it cost nothing, it saved what the leader paid."""
        reply = replace(
            first,
            coalesced=True,
            cost=ZERO,
            saved=first.saved if first.cache_hit else first.cost,
            latency=perf_counter() - started,
            role=plan.role,
        )
        self._recorded_hit(reply)
        self._notify(plan, reply, None, Outcome.COALESCED)
        return reply

    def _recorded_hit(self, reply: Reply) -> None:
        """Queue a hit in the ledger (no I/O here; a background writer flushes it)."""
        try:
            self.runtime.ledger.record_hit(reply)
        except Exception as exc:
            self._warn_once("ledger-hit", f"cache hit not recorded in the ledger: {exc}")

    # ------------------------------------------------------------------ the provider

    def _miss(self, plan: Plan, started: float) -> Steps[Reply]:
        hold = None
        try:
            provider = yield from self._provider(plan)
            hold = yield from self._reserve(plan)
            answer, waits, retries = yield from self._attempts(plan, provider, stream=False)
        except BaseException as exc:
            yield from self._release(hold)
            self._notify(plan, None, exc, Outcome.ERROR)
            raise
        reply = self._reply(plan, answer, started, waits, retries)
        yield from self._settle(plan, reply, hold, store=True)
        self._notify(plan, reply, None, Outcome.MISS)
        return reply

    def _provider(self, plan: Plan) -> Steps[Provider]:
        runtime = self.runtime
        found = runtime.pooled(plan.provider, plan.kind)
        if found is None:  # building one imports its SDK and makes its clients
            found = yield Blocking(runtime.provider, (plan.provider, plan.kind))
        return found

    def _attempts(self, plan: Plan, provider: Provider, *, stream: bool) -> Steps[Any]:
        """Attempts until one answers, each admitted by the limiter, all within the deadline.

        Returns the answer (a reply, or an open stream and its first chunk), the waits on limits
        (each ``(start, seconds)``) and the number of retries.
        """
        runtime = self.runtime
        clock, policy = runtime.clock, runtime.retry
        deadline = clock.monotonic() + policy.deadline
        per_attempt = plan.timeout or self.planner.attempt_timeout(plan.provider, plan.kind)
        waits: list[tuple[float, float]] = []
        retry = 0
        while True:
            yield from self._admit(plan, deadline, waits)
            remaining = deadline - clock.monotonic()
            if remaining <= 0:
                raise RetriableProviderError(
                    f"no reply within the call's deadline of {policy.deadline:g}s "
                    "(retry.deadline_seconds)",
                    provider=plan.provider,
                )
            request = replace(plan.request, timeout=min(per_attempt or remaining, remaining))
            effect = OpenStream(provider, request) if stream else Call(provider, request)
            try:
                answer = yield effect
                return answer, waits, retry
            except ProviderError as exc:
                delay = policy.delay(exc, retry, deadline - clock.monotonic())
            log.info("retrying %s after %.2fs (retry %d)", plan.provider, delay, retry + 1)
            yield Sleep(delay, clock)
            retry += 1

    def _reply(
        self,
        plan: Plan,
        answer: ProviderReply,
        started: float,
        waits: list[tuple[float, float]],
        retries: int,
    ) -> Reply:
        return Reply(
            provider=plan.provider,
            model=answer.model or plan.model,
            text=answer.text,
            image=answer.image,
            usage=answer.usage,
            retries=retries,
            waited=sum(seconds for _, seconds in waits),
            waits=tuple(waits),
            latency=perf_counter() - started,
            role=plan.role,
            key=plan.key,
            run_id=self.runtime.run_id,
            finish_reason=answer.finish_reason,
        )

    def _settle(self, plan: Plan, reply: Reply, hold: Any, *, store: bool) -> Steps[None]:
        """Reconcile the limiter, price the call, record it and cache it; none of it can fail
        the call: the reply is paid for, so it is returned whatever breaks here."""
        limiter = self.runtime.limiter
        if limiter is not None:
            extra = float(reply.usage.total_tokens - plan.estimate.total_tokens)
            amounts = {"global/tokens": extra, f"provider:{plan.provider}/tokens": extra}
            try:
                yield blocking(limiter, limiter.adjust, amounts)
            except Exception as exc:
                self._warn_once("limiter-adjust", f"rate limiter not reconciled: {exc}")
        reply.cost = self._price(plan.provider, plan.model, reply.usage)
        ledger = yield from self._backend("ledger")
        try:
            yield blocking(ledger, ledger.record, reply, hold)
        except Exception as exc:
            self._warn_once("ledger", f"call not recorded in the cost ledger: {exc}")
        if plan.write and store:
            yield from self._store(plan, reply)

    # ------------------------------------------------------------------ limits and budgets

    def _reserve(self, plan: Plan) -> Steps[Any]:
        """Hold the call's estimated cost against every budget that applies; None if none."""
        if self.planner.output_cap(plan.provider) is None:  # no budget applies
            return None
        keeper = yield from self._backend("budgets")
        if keeper is None:
            return None
        estimate = self._price(plan.provider, plan.model, plan.estimate)
        if estimate is None:
            raise ConfigError(
                f"a cost budget applies to {plan.provider} but model {plan.model!r} has no known "
                f"price: set cost_per_input_token and cost_per_output_token there, or install "
                f"the provider's pricing plugin",
                path=f"rate_limiting.providers.{plan.provider}",
            )
        return (yield blocking(keeper, keeper.reserve, plan.provider, estimate))

    def _release(self, hold: Any) -> Steps[None]:
        if hold is None:
            return
        keeper = self.runtime.budgets
        assert keeper is not None
        try:
            yield blocking(keeper, keeper.release, hold)
        except Exception as exc:
            self._warn_once("budget-release", f"budget reservation not released: {exc}")

    def _admit(self, plan: Plan, deadline: float, waits: list[tuple[float, float]]) -> Steps[None]:
        """Wait until the limiter admits one attempt; each wait's ``(start, seconds)`` is added to
        ``waits``."""
        limiter = yield from self._backend("limiter")
        if limiter is None:
            return
        clock = self.runtime.clock
        amounts = admission(plan.provider, plan.estimate.total_tokens)
        needed = 0.0  # seconds the limiter asked to wait (the sleeps add jitter)
        while wait := (yield blocking(limiter, limiter.acquire, amounts)):
            if (
                self.on_limit == "raise"
                or math.isinf(wait)
                or needed + wait > self.max_wait
                or clock.monotonic() + wait > deadline
            ):
                raise RateLimitError(f"rate limit reached for {plan.provider}", retry_after=wait)
            needed += wait
            room = deadline - clock.monotonic() - wait  # jitter never breaks the deadline
            slept = wait + random.uniform(0, max(0.0, min(wait * 0.2, LIMIT_JITTER_SECONDS, room)))
            start = clock.monotonic()
            yield Sleep(slept, clock)
            waits.append((start, slept))

    # ------------------------------------------------------------------ helpers

    def _backend(self, name: str) -> Steps[Any]:
        """The runtime's backend ``name``, built off the event loop the first time."""
        built = vars(self.runtime)  # the backends already built (cached properties)
        if name in built:
            return built[name]
        return (yield Blocking(getattr, (self.runtime, name)))

    def _price(self, provider: str, model: str, usage: Usage) -> Decimal | None:
        cost_model = self.runtime.cost_model(provider)
        cost = None if cost_model is None else cost_model.price(model, usage)
        if cost is None:
            self._warn_once(
                f"price:{provider}:{model}",
                f"no price known for {provider} model {model!r}; its cost is recorded as unknown",
            )
        return cost

    def _notify(
        self, plan: Plan, reply: Reply | None, error: BaseException | None, outcome: Outcome
    ) -> None:
        if not self._observed:
            return
        model = reply.model if reply else plan.model
        event = CallEvent(plan.provider, model, plan.role, reply, error, outcome)
        try:
            self.runtime.manager.hook.call_completed(event=event)
        except Exception:
            log.exception("a call_completed observer failed")

    def _warn_once(self, topic: str, message: str) -> None:
        if topic not in self._warned:
            self._warned.add(topic)
            log.warning(message)
