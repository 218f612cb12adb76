"""``RedisCache``: the ``redis`` cache backend, reply bytes shared by every worker on one Redis.

Keys: everything this backend writes starts with ``<key_prefix><namespace>:cache:`` (the
namespace escaped as the kit's ``RedisSettings.prefix`` does for every Redis plugin, so no
project's keys can start with another's): entries under ``e:``,
flight locks under ``lock:``, and the hit/miss counts in the hash ``counts``. Two projects on one
Redis never read each other's entries, and ``clear`` and ``stats`` walk only this project's keys
with ``SCAN`` (never ``KEYS`` or ``FLUSHDB``).

Values are the core's bytes, stored as they are (a Redis string): nothing is pickled, so a
poisoned Redis can serve a wrong answer at worst, never run code. Each entry carries its own TTL
(``SET … PX``) and Redis drops it when it expires: there is nothing left for ``prune`` to remove.

Under asyncio the gateway awaits :meth:`RedisCache.aget` (``Capability.ASYNC_GET``): the same
``GET`` on a ``redis.asyncio`` client of the running loop's own, so an async hit needs no worker
thread. Both share one breaker, one set of counts and the same warnings.

Fail-open: a hit is one ``GET`` with short socket and connect timeouts, no client-side retries
(redis-py 8's ``Redis(host=...)`` retries ten times with backoff: 4.6 s for one call to a frozen
server at a 0.1 s timeout) and a :class:`~questfoundry_cache_redis.breaker.Breaker`
that, after a few failures in a row, stops asking Redis for a few seconds. The breaker's open
state is kept in a small file of the project's ``.questfoundry/`` (``redis-cache-<id>.breaker``),
so every process of the machine leaves the failing Redis alone: a short process (an ``ask``)
started during an outage skips Redis at once instead of paying the timeouts again. While Redis
is down or frozen, ``get`` is a miss, ``set`` stores nothing, ``lock`` says "go ahead without
one" and one warning says why, once per process however many calls, threads and cache objects
meet the outage (later causes are logged at DEBUG); the first answer from Redis ends the outage
(logged at INFO), and a later outage is warned about again. The
maintenance calls (``delete``, ``clear``, ``prune``, ``stats``) always try Redis and raise
:class:`~questfoundry.kit.BackendUnavailableError` with one line when it does not
answer.

Hits and misses are counted in the process and added to the ``counts`` hash, in the same round
trip, when the process stores an entry, asks for stats or closes the cache: a hit stays one
``GET``, and ``stats`` reports every process since the counts were first written.
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar, cast

import redis
import redis.asyncio
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.retry import Retry

from questfoundry.kit import (
    BackendUnavailableError,
    CacheStats,
    Clock,
    ConfigError,
    PerLoop,
    RedisSettings,
    redis_outage,
    redis_scan_pattern,
)
from questfoundry_cache_redis.breaker import Breaker
from questfoundry_cache_redis.settings import CAPABILITIES

log = logging.getLogger("questfoundry.cache.redis")

T = TypeVar("T")

#: Redis did not answer: these open the breaker
_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError, asyncio.TimeoutError)
#: Redis answered with an error (out of memory, a key of another type, an ACL refusal)
_REFUSED = (redis.RedisError,)

#: what the outage of a Redis that answers with errors is noted under, after the cache's label
_REFUSING = " refusing"
#: what a call-path command answers when the breaker is open or Redis fails
_FAILED: Any = object()
#: keys per SCAN step and per UNLINK
_BATCH = 500

#: what a failure of each call means for the caller ({} is the reason)
_READ = "cannot be read: {}; calls go to the provider"
_STORE = "cannot store an entry: {}; replies are not cached"
_LOCK = "cannot take a flight lock: {}; identical calls are not coalesced"
_UNLOCK_FAILED = "cannot release a flight lock: {}; it frees itself when its TTL runs out"

#: compare-and-delete: the lock goes only if it still holds the caller's token
_UNLOCK = """
if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0
"""


class RedisCache:
    """Reply bytes by key in Redis, under this project's namespace; see the module."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        settings: RedisSettings,
        *,
        namespace: str,
        breaker_failures: int = 3,
        breaker_cooldown: float = 5.0,
        breaker_file: Path | None = None,
        clock: Clock | None = None,
    ) -> None:
        """A client for the Redis of ``settings``; nothing is connected until the first call.

        ``breaker_file``, when given, holds the breaker's open state for every process (see the
        module); without it the breaker is this object's own.
        """
        self.where = settings.address
        self.namespace = namespace
        url, options = settings.url, settings.client_options()
        try:
            self._client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)
            redis.asyncio.Redis.from_url(url, **options)  # the URL is checked once, here
        except ValueError as exc:
            raise ConfigError(
                f"is not a usable Redis URL: {exc}", path="caching.redis_url"
            ) from None
        self._aclients: PerLoop[redis.asyncio.Redis] = PerLoop(
            lambda: redis.asyncio.Redis.from_url(url, retry=AsyncRetry(NoBackoff(), 0), **options),
            lambda client: client.aclose(),
        )
        self._breaker = Breaker(
            breaker_failures,
            breaker_cooldown,
            clock or Clock(),
            shared=breaker_file,
            name=self._label(),
        )
        base = settings.prefix(namespace, "cache")
        self._entries = base + "e:"
        self._locks = base + "lock:"
        self._counts = base + "counts"
        self._unlock = self._client.register_script(_UNLOCK)
        self._lock = threading.Lock()  # guards the counts
        self._hits = self._misses = 0  # not yet added to the counts in Redis

    def __repr__(self) -> str:
        return f"RedisCache({self.where!r}, namespace={self.namespace!r})"

    # ------------------------------------------------------------------ the call path

    def get(self, key: str) -> bytes | None:
        """The value under ``key``; None when missing, expired, or Redis does not answer."""
        return self._counted(self._ask(_READ, self._client.get, self._entries + key))

    async def aget(self, key: str) -> bytes | None:
        """:meth:`get` on this event loop's own asyncio client."""
        value = _FAILED
        if not self._breaker.allow():
            self._left_alone()
        else:
            try:
                client = await self._aclients.get()
                value = await client.get(self._entries + key)
            except _UNREACHABLE as exc:
                self._unreachable(_READ, exc)
            except _REFUSED as exc:
                self._refused(_READ, exc)
            else:
                self._answered()
        return self._counted(value)

    def _counted(self, value: Any) -> bytes | None:
        """A read's answer as ``get`` returns it, counted as a hit or a miss."""
        with self._lock:
            if value is None or value is _FAILED:
                self._misses += 1
                return None
            self._hits += 1
        return cast(bytes, value)

    def set(
        self, key: str, value: bytes | bytearray | memoryview, ttl: float | None = None
    ) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (None: until deleted or evicted).

        Carries this process's hit and miss counts to Redis in the same round trip.
        """
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"cache values are bytes, not {type(value).__name__}")
        px = None if ttl is None else _milliseconds(ttl)
        hits, misses = self._take_counts()
        stored = self._ask(_STORE, self._store, self._entries + key, bytes(value), px, hits, misses)
        if stored is _FAILED:
            self._give_back(hits, misses)

    def lock(self, key: str, ttl: float) -> str | None:
        """Take ``key``'s flight lock for ``ttl`` seconds (``SET NX PX`` with a random token).

        The token when taken, None when another caller holds it, ``""`` when Redis does not
        answer (go ahead without coalescing). Never raises.
        """
        token = secrets.token_hex(16)
        taken = self._ask(
            _LOCK, self._client.set, self._locks + key, token, nx=True, px=_milliseconds(ttl)
        )
        if taken is _FAILED:
            return ""
        return token if taken else None

    def unlock(self, key: str, token: str) -> None:
        """Release ``key``'s lock if ``token`` still holds it; never another's. Never raises.

        A lock left behind (Redis down at the time) frees itself when its TTL runs out.
        """
        if token:
            self._ask(_UNLOCK_FAILED, self._unlock, keys=[self._locks + key], args=[token])

    def _ask(self, failure: str, command: Callable[..., Any], *args: Any, **options: Any) -> Any:
        """One command on the call path: its answer, or :data:`_FAILED` when the breaker is
        open or Redis fails (warned about as ``failure`` says, and counted by the breaker)."""
        if not self._breaker.allow():
            self._left_alone()
            return _FAILED
        try:
            answer = command(*args, **options)
        except _UNREACHABLE as exc:
            self._unreachable(failure, exc)
            return _FAILED
        except _REFUSED as exc:
            self._refused(failure, exc)
            return _FAILED
        self._answered()
        return answer

    def _store(self, name: str, data: bytes, px: int | None, hits: int, misses: int) -> None:
        if hits or misses:
            pipe = self._client.pipeline(transaction=False)
            pipe.set(name, data, px=px)
            self._add_counts(pipe, hits, misses)
            pipe.execute()
        else:
            self._client.set(name, data, px=px)

    # ------------------------------------------------------------------ maintenance

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when it was there."""
        return bool(
            self._maintain("cannot delete an entry", self._client.delete, self._entries + key)
        )

    def clear(self) -> int:
        """Remove every entry of this namespace (nothing else); return how many."""

        def clear_all() -> int:
            return sum(int(self._client.unlink(*batch)) for batch in self._scan())

        return self._maintain("cannot be cleared", clear_all)

    def prune(self) -> int:
        """Nothing to remove: Redis drops expired entries itself. Stores this process's counts.

        Raises :class:`BackendUnavailableError` when Redis does not answer, as the others do.
        """
        hits, misses = self._take_counts()
        pipe = self._client.pipeline(transaction=False)
        self._add_counts(pipe, hits, misses)
        pipe.ping()
        try:
            self._maintain("cannot be pruned", pipe.execute)
        except BackendUnavailableError:
            self._give_back(hits, misses)
            raise
        return 0

    def stats(self) -> CacheStats:
        """Entries and bytes of this namespace; hits and misses of every process since creation."""
        hits, misses = self._take_counts()
        try:
            return self._maintain("cannot be read", self._stats, hits, misses)
        except BackendUnavailableError:
            self._give_back(hits, misses)
            raise

    def close(self) -> None:
        """Store this process's counts (if Redis answers) and close the connections."""
        hits, misses = self._take_counts()
        if (hits or misses) and self._breaker.allow():
            pipe = self._client.pipeline(transaction=False)
            self._add_counts(pipe, hits, misses)
            try:
                pipe.execute()
            except (*_UNREACHABLE, *_REFUSED) as exc:  # the counts are lost, nothing else
                log.debug("%s: counts not stored on closing: %s", self._label(), _reason(exc))
        self._client.close()
        self._aclients.close()

    # ------------------------------------------------------------------ helpers

    def _stats(self, hits: int, misses: int) -> CacheStats:
        seen: set[bytes] = set()  # SCAN may return a key twice
        volume = 0
        for batch in self._scan():
            fresh = [name for name in batch if name not in seen]
            seen.update(fresh)
            pipe = self._client.pipeline(transaction=False)
            for name in fresh:
                pipe.strlen(name)
            volume += sum(int(length) for length in pipe.execute())
        pipe = self._client.pipeline(transaction=False)
        self._add_counts(pipe, hits, misses)
        pipe.hmget(self._counts, ["hits", "misses"])
        stored = pipe.execute()[-1]
        total_hits, total_misses = (int(count or 0) for count in stored)
        return CacheStats(len(seen), volume, total_hits, total_misses, persistent_counts=True)

    def _scan(self) -> Iterator[list[bytes]]:
        """This namespace's entry keys, a batch at a time."""
        batch: list[bytes] = []
        for name in self._client.scan_iter(match=redis_scan_pattern(self._entries), count=_BATCH):
            batch.append(name)
            if len(batch) >= _BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    def _maintain(self, what: str, action: Callable[..., T], *args: Any) -> T:
        try:
            return action(*args)
        except (*_UNREACHABLE, *_REFUSED) as exc:
            raise BackendUnavailableError(f"{self._label()} {what}: {_reason(exc)}") from None

    def _take_counts(self) -> tuple[int, int]:
        with self._lock:
            counts = self._hits, self._misses
            self._hits = self._misses = 0
        return counts

    def _give_back(self, hits: int, misses: int) -> None:
        with self._lock:
            self._hits += hits
            self._misses += misses

    def _add_counts(self, pipe: Any, hits: int, misses: int) -> None:
        if hits:
            pipe.hincrby(self._counts, "hits", hits)
        if misses:
            pipe.hincrby(self._counts, "misses", misses)

    def _answered(self) -> None:
        self._breaker.succeeded()
        label = self._label()
        redis_outage(label + _REFUSING, down=False)
        if redis_outage(label, down=False):
            log.info("%s answers again; caching resumes", label)

    def _unreachable(self, what: str, exc: BaseException) -> None:
        """Redis did not answer: count it against the breaker; warn once per process and outage."""
        opened = self._breaker.failed()
        after = f"; Redis is left alone for {self._breaker.cooldown:g}s" if opened else ""
        self._warn("", f"{what.format(_reason(exc))}{after}")

    def _refused(self, what: str, exc: BaseException) -> None:
        """Redis answered with an error: warned once per process until it answers without one;
        the breaker stays closed."""
        self._warn(_REFUSING, what.format(_reason(exc)))

    def _left_alone(self) -> None:
        """A call skipped Redis, the breaker being open (maybe by another process)."""
        self._warn(
            "",
            f"did not answer a moment ago; it is left alone for up to "
            f"{self._breaker.cooldown:g}s and calls go to the provider",
        )

    def _warn(self, kind: str, problem: str) -> None:
        label = self._label()
        first = redis_outage(label + kind, down=True)
        log.log(logging.WARNING if first else logging.DEBUG, "%s %s", label, problem)

    def _label(self) -> str:
        return f"redis cache {self.where} (namespace {self.namespace!r})"


def _milliseconds(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _reason(exc: BaseException) -> str:
    return " ".join(str(exc).split()).rstrip(".") or type(exc).__name__
