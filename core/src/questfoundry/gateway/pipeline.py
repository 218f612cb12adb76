"""The one pipeline: every decision of a call, written once for both faces and for streams.

::

    plan → cache get ── hit ─────────────────────────────────────────→ ledger(hit, saved $) → reply
         → single flight: an identical request in flight? wait for its answer
         → shared flight (a cache with locks): another process calling for it? wait for its
           answer to reach the cache (``caching.coalesce_seconds`` at most), else take the lock
         → budget: reserve the estimate (refused before anything is sent)
         → journal: the intent to call, one append (a crash leaves it for the ledger)
         → limiter: requests and estimated tokens (wait or raise), again before every attempt
         → provider attempt, retried on 429/5xx/network with backoff + jitter, within a deadline
           (a stream relays its chunks here)
         → price → ledger: the row settles the intent and the hold → cache set → reply
         → afterwards (:mod:`~questfoundry.gateway.deferred`), for a limiter that blocks: the
           limiter reconciled with the real usage, the calls of a moment as one

Each step is a generator that yields :mod:`~questfoundry.gateway.effects` for its driver to carry
out (sync in place, async awaited, blocking backend I/O on a worker thread). Observers
(``call_completed``) are called here, once per call, for every ending — so on the caller's thread
or task. A cache or ledger that fails never fails a call: it is bypassed with one warning, and a
reply the provider answered is always returned. The limiter, budget and bookkeeping steps are in
:mod:`~questfoundry.gateway.books`.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from time import perf_counter
from typing import TYPE_CHECKING, Any

from questfoundry.contracts.errors import ProviderError, RetriableProviderError
from questfoundry.contracts.protocols import Capability, FlightLocking, Provider
from questfoundry.contracts.records import Chunk, Outcome, ProviderReply, Reply, Usage
from questfoundry.gateway.books import ZERO, Books
from questfoundry.gateway.caching import CacheSteps
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
    blocking,
)
from questfoundry.gateway.flights import Flights
from questfoundry.gateway.plan import Plan, Planner

if TYPE_CHECKING:
    from questfoundry.gateway.backends import Backends

log = logging.getLogger("questfoundry.gateway")

#: seconds between two looks in the cache while another process calls for the same key
POLL_SECONDS = 0.02


class Abandoned(Exception):
    """Thrown into a stream's steps when its caller stops reading."""


class Pipeline:
    """The steps of a call over one runtime's backends."""

    def __init__(self, runtime: Backends, planner: Planner) -> None:
        self.runtime = runtime
        self.planner = planner
        self.flights: Flights[Reply] = Flights()
        self.coalesce = float(runtime.config.section("caching").get("coalesce_seconds", 30))
        self.books = Books(runtime, planner)
        self.cache = CacheSteps(runtime, self.books)

    # ------------------------------------------------------------------ calls

    def call(self, plan: Plan, started: float, landings: int | None = None) -> Steps[Reply]:
        """A whole call: the cache, the flight, then the provider.

        ``landings`` is given when the caller has already looked in the cache (with
        :meth:`lookup_now`, when ``flights.landings`` was that value); the cache is read once.
        """
        if landings is None:
            landings = self.flights.landings
            if plan.read and (hit := (yield from self.cache.lookup(plan, started))):
                return hit
        if not plan.key:
            return (yield from self._miss(plan, started))
        flight, leader = self.flights.join(plan.key)
        if not leader:
            try:
                first = yield Join(flight)
            except BaseException as exc:
                self.books.notify(plan, None, exc, Outcome.ERROR)
                raise
            return self._coalesced(plan, first, started)
        reply: Reply | None = None
        error: BaseException | None = None
        try:
            if plan.read and self.flights.landed_since(plan.key, landings):  # cached by now?
                reply = yield from self.cache.lookup(plan, started)
            if reply is None:
                reply = yield from self._shared_flight(plan, started)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self.flights.land(plan.key, flight, reply, error)
        return reply

    def stream(self, plan: Plan, started: float) -> Steps[Reply]:
        """A streamed call: yields :class:`Emit` for each piece of text, replayed on a hit."""
        if plan.read and (hit := (yield from self.cache.lookup(plan, started))):
            try:
                for piece in hit.chunks if hit.chunks is not None else (hit.text or "",):
                    yield Emit(piece)
            except Abandoned:
                pass  # a replay costs nothing: the hit is already recorded
            return hit
        return (yield from self._miss(plan, started, stream=True))

    def _shared_flight(self, plan: Plan, started: float) -> Steps[Reply]:
        """The miss, led or followed across processes when the cache has flight locks.

        Until this caller takes the key's lock it polls the cache: another process calling for
        the same key stores its answer there (a hit here). The lock's holder re-reads once after
        taking it (the answer may have landed just before), calls, stores, then releases it. After
        ``coalesce_seconds`` without the lock the caller calls anyway; a holder killed mid-call
        frees the lock (the file cache's at once, Redis's when it expires).
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
        while True:
            token, raw = yield blocking(cache, self.cache.lock_and_read, plan, self.coalesce)
            if token is not None:
                break
            if clock.monotonic() >= give_up:
                token = ""
                break
            yield Sleep(POLL_SECONDS, clock)
        if token and (hit := self.cache.hit(plan, raw, started)) is not None:
            yield blocking(cache, locks.unlock, plan.key, token)
            return hit
        try:
            return (yield from self._miss(plan, started, token=token))  # stores, then unlocks
        except GeneratorExit:
            if token:
                locks.unlock(plan.key, token)
            raise
        except BaseException:
            if token:
                yield blocking(cache, locks.unlock, plan.key, token)
            raise

    # ------------------------------------------------------------------ the provider

    def _miss(
        self, plan: Plan, started: float, *, stream: bool = False, token: str = ""
    ) -> Steps[Reply]:
        """Reserve, write the intent, call (relaying a stream), record, reconcile the limiter,
        store the reply (and release the flight lock ``token`` holds)."""
        books = self.books
        hold = intent = None
        outcome = Outcome.STREAM_FINISHED if stream else Outcome.MISS
        opened = False
        try:
            provider = yield from self._provider(plan)
            estimate = books.price(plan.provider, plan.model, plan.estimate)
            hold = yield from books.reserve(plan, estimate)
            intent = yield from books.intend(plan, estimate, hold)
            answer, waits, retries = yield from self._attempts(plan, provider, stream=stream)
            chunks = None
            if stream:
                opened = True
                answer, chunks, outcome = yield from self._relay(plan, answer)
        except GeneratorExit:  # collected unread: nothing more may be yielded
            books.abandon(hold, intent)
            raise
        except BaseException as exc:
            yield from books.release(hold, intent)
            books.notify(plan, None, exc, Outcome.STREAM_FAILED if opened else Outcome.ERROR)
            raise
        reply = self._reply(plan, answer, started, waits, retries, chunks)
        store = plan.write and outcome is not Outcome.STREAM_ABANDONED
        yield from books.record(plan, reply, hold, intent)
        books.reconcile(plan, reply)
        if store:
            yield from self.cache.store(plan, reply, token)
        books.notify(plan, reply, None, outcome)
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
            yield from self.books.admit(plan, deadline, waits)
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

    def _relay(self, plan: Plan, opened: Any) -> Steps[Any]:
        """Hand a stream's text to the caller as it arrives: the answer it adds up to, its
        pieces and how it ended (finished, or abandoned by the caller)."""
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
        text = "".join(pieces)
        usage = usage or Usage(plan.estimate.input_tokens, len(text) // 4 + 1)
        return ProviderReply(plan.model, text=text, usage=usage), tuple(pieces), outcome

    def _reply(
        self,
        plan: Plan,
        answer: ProviderReply,
        started: float,
        waits: list[tuple[float, float]],
        retries: int,
        chunks: tuple[str, ...] | None,
    ) -> Reply:
        """The call's one record, priced."""
        model = answer.model or plan.model
        return Reply(
            provider=plan.provider,
            model=model,
            text=answer.text,
            image=answer.image,
            usage=answer.usage,
            cost=self.books.price(plan.provider, model, answer.usage),
            retries=retries,
            waited=sum(seconds for _, seconds in waits),
            waits=tuple(waits),
            latency=perf_counter() - started,
            role=plan.role,
            key=plan.key,
            run_id=self.runtime.run_id,
            finish_reason=answer.finish_reason,
            chunks=chunks,
        )

    def _coalesced(self, plan: Plan, first: Reply, started: float) -> Reply:
        """The leader's reply for a follower: it cost nothing, it saved what the leader paid."""
        reply = replace(
            first,
            coalesced=True,
            cost=ZERO,
            saved=first.saved if first.cache_hit else first.cost,
            latency=perf_counter() - started,
            role=plan.role,
            run_id=self.runtime.run_id,
        )
        self.books.recorded_hit(reply)
        self.books.notify(plan, reply, None, Outcome.COALESCED)
        return reply
