"""The pipeline's cache side: reading a hit, and storing a reply once it is answered.

A read or a store is an effect (a thread under asyncio for a cache that blocks, the cache's
``aget`` where it has one) or, when the face may read in place, a plain call. A store is made
before the call's flight lands and its lock is released, so whoever asks next finds the answer
in the cache: stores are never put off (a reader of the cache outside the gateway sees them too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from questfoundry.contracts.protocols import Capability, FlightLocking
from questfoundry.contracts.records import Outcome, Reply
from questfoundry.gateway.books import Books
from questfoundry.gateway.codec import HitDecoder, encode
from questfoundry.gateway.effects import Steps, Twin, blocking
from questfoundry.gateway.plan import Plan

if TYPE_CHECKING:
    from questfoundry.gateway.backends import Backends


class CacheSteps:
    """Reads and stores of one runtime's cache, for its pipeline."""

    def __init__(self, runtime: Backends, books: Books) -> None:
        self.runtime = runtime
        self.books = books
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

    def store(self, plan: Plan, reply: Reply, token: str = "") -> Steps[None]:
        """Store ``reply`` under the plan's key, then release the flight lock ``token`` holds
        (if any), in one step: a cache that blocks is one trip to a worker thread, not two."""
        cache = self.runtime.cache
        assert cache is not None
        yield blocking(cache, self._store, plan, encode(reply), token)

    def _store(self, plan: Plan, value: bytes, token: str) -> None:
        cache = self.runtime.cache
        assert cache is not None
        try:
            cache.set(plan.key, value, plan.ttl)
        except Exception as exc:
            self.books.warn_once("cache-write", f"cache write failed, reply not cached: {exc}")
        finally:
            if token:
                locks: FlightLocking = cache  # type: ignore[assignment]
                locks.unlock(plan.key, token)

    def lock_and_read(self, plan: Plan, seconds: float) -> tuple[str | None, bytes | None]:
        """Take the key's flight lock for ``seconds`` and, once taken, read the key again (its
        answer may have landed just before), in one step: the token (None: held elsewhere,
        ``""``: locks unusable) and what the cache holds."""
        locks: FlightLocking = self.runtime.cache  # type: ignore[assignment]
        token = locks.lock(plan.key, seconds)
        return token, self.read(plan) if token else None
