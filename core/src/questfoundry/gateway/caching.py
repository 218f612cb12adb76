"""The pipeline's cache side: reading a hit, and storing a reply once it is answered.

A read is an effect (a thread under asyncio for a cache that blocks, the cache's ``aget`` where it
has one) or, when the face may read in place, a plain call. A store, the release of the flight's
lock and of its place on this process's board happen after the reply: in place for a cache that
never blocks, else on the runtime's :class:`~questfoundry.gateway.deferred.Deferred` thread, in
that order, so an identical request finds the flight until the answer is in the cache.
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from questfoundry.contracts.protocols import Capability, FlightLocking
from questfoundry.contracts.records import Outcome, Reply
from questfoundry.gateway.books import Books
from questfoundry.gateway.codec import HitDecoder, encode
from questfoundry.gateway.effects import Steps, Twin, blocking
from questfoundry.gateway.flights import Flights
from questfoundry.gateway.plan import Plan

if TYPE_CHECKING:
    from questfoundry.runtime import Runtime


class CacheSteps:
    """Reads and stores of one runtime's cache, for its pipeline."""

    def __init__(self, runtime: Runtime, books: Books, flights: Flights[Reply]) -> None:
        self.runtime = runtime
        self.books = books
        self.flights = flights
        self._decode = HitDecoder()

    # ------------------------------------------------------------------ reading

    def can_look_now(self, asynchronous: bool) -> bool:
        """Whether a face may call :meth:`lookup_now` itself instead of yielding an effect:
        the cache and ledger are built, and (under asyncio) the cache never blocks."""
        runtime = self.runtime
        if not (runtime.ready("cache") and runtime.ready("ledger")):
            return False
        cache = runtime.cache
        return not asynchronous or (
            cache is not None and Capability.NON_BLOCKING in cache.capabilities
        )

    def lookup_now(self, plan: Plan, started: float) -> Reply | None:
        """The cache hit for ``plan``, read in place (see :meth:`can_look_now`)."""
        return self.hit(plan, self.read(plan), started)

    def lookup(self, plan: Plan, started: float) -> Steps[Reply | None]:
        """:meth:`lookup_now` as steps: the read is an effect, built backends first."""
        cache = yield from self.books.backend("cache")
        if Capability.ASYNC_GET in cache.capabilities:
            raw = yield Twin(self.read, self._aread, (plan,))
        else:
            raw = yield blocking(cache, self.read, plan)
        yield from self.books.backend("ledger")
        return self.hit(plan, raw, started)

    def read(self, plan: Plan) -> bytes | None:
        """The cached bytes; None on a miss, or when the cache fails (warned once)."""
        try:
            return self.runtime.cache.get(plan.key)  # type: ignore[union-attr]
        except Exception as exc:
            self._read_failed(exc)
            return None

    async def _aread(self, plan: Plan) -> bytes | None:
        """:meth:`read` through the cache's ``aget`` (``Capability.ASYNC_GET``)."""
        try:
            raw: bytes | None = await self.runtime.cache.aget(plan.key)  # type: ignore[union-attr]
        except Exception as exc:
            self._read_failed(exc)
            return None
        return raw

    def _read_failed(self, exc: Exception) -> None:
        self.books.warn_once("cache-read", f"cache read failed, calling the provider: {exc}")

    def hit(self, plan: Plan, raw: bytes | None, started: float) -> Reply | None:
        """The hit in ``raw``, recorded and observed as one; None for nothing or a broken entry."""
        if raw is None:
            return None
        reply = self._decode(raw, plan.provider, plan.role, plan.key, self.runtime.run_id, started)
        if reply is None:
            self.books.warn_once("cache-corrupt", f"ignoring an unreadable cache entry {plan.key}")
            return None
        self.books.recorded_hit(reply)
        self.books.notify(plan, reply, None, Outcome.HIT)
        return reply

    # ------------------------------------------------------------------ storing

    def keeps(self, plan: Plan, reply: Reply | None) -> bool:
        """Whether ``reply`` goes to a cache that blocks, after the reply: its flight is kept on
        the board until it is stored."""
        cache = self.runtime.cache
        return (
            reply is not None
            and not reply.cache_hit
            and plan.write
            and cache is not None
            and Capability.NON_BLOCKING not in cache.capabilities
        )

    def store(
        self, plan: Plan, reply: Reply | None, flight: Future[Reply] | None, token: str
    ) -> None:
        """Store ``reply`` (None: store nothing), then release ``token``'s lock and the flight —
        in place for a cache that never blocks, else afterwards."""
        cache = self.runtime.cache
        if cache is None:
            return
        if Capability.NON_BLOCKING in cache.capabilities:
            self._store(plan, reply, flight, token)
        elif reply is not None or token:
            self.runtime.deferred.soon(self._store, plan, reply, flight, token)

    def _store(self, plan: Plan, reply: Reply | None, flight: Any, token: str) -> None:
        cache = self.runtime.cache
        assert cache is not None
        if reply is not None:
            try:
                cache.set(plan.key, encode(reply), plan.ttl)
            except Exception as exc:
                self.books.warn_once("cache-write", f"cache write failed, reply not cached: {exc}")
        if token:
            locks: FlightLocking = cache  # type: ignore[assignment]
            locks.unlock(plan.key, token)
        if flight is not None:
            self.flights.release(plan.key, flight)
