"""The ``redis`` state store: one JSON string per document, every key under the project's prefix.

A document ``key`` lives at ``<key_prefix><namespace>:state:<key>`` (the namespace escaped as the
kit's ``RedisSettings.prefix`` does for every Redis plugin). ``update`` is optimistic:
read the key, let ``change`` compute the new document, then write it with a Lua script that
writes only if the key still holds what was read (compared by SHA-1); when another writer got in
first the script answers what the key holds now and ``change`` runs again on that, a bounded
number of times. Every write is one command, so it lands
whole or not at all. (Not WATCH/MULTI: redis-py turns a timeout while watching into a
``WatchError``, indistinguishable from a conflict, and retrying then could apply a change twice.)

One run at a time (``Capability.LEASES``): the project's lease is one key beside the state,
``<key_prefix><namespace>:lease:run``, taken with ``SET NX PX`` and holding the holder's details
(run, loop, pid, host, start) and its token; the holder renews it (a script that extends it only
while it holds that token) every third of ``lease_seconds``, so a holder that dies frees the
project at most ``lease_seconds`` (15) later, and gives it back with another such script.

Short timeouts and no client-side retries: when Redis is down or frozen a call fails within its
timeouts with a :class:`~questfoundry.kit.StateError` naming ``host:port/db`` (never
the password) instead of hanging.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from questfoundry.kit import (
    Clock,
    LeaseHolder,
    RedisSettings,
    StateError,
    check_key,
    is_internal,
    key_problem,
    redis_scan_pattern,
)
from questfoundry_store_redis.settings import (
    CAPABILITIES,
    DEFAULT_LEASE_SECONDS,
    DEFAULT_POOL_SIZE,
)

#: conflicting writers an ``update`` survives before it gives up
MAX_CONFLICTS = 64
#: conflicts an ``update`` retries at once, on the value the losing write was answered with
EAGER_TRIES = 3
#: the longest pause, in seconds, before reading again after more conflicts than that
MAX_BACKOFF = 0.005
#: seconds a call waits for a free connection when all ``pool_size`` are busy
POOL_WAIT = 0.5
SCAN_COUNT = 1000

#: ``update``'s write: KEYS[1] becomes ARGV[2] (deleted when empty; PX ARGV[3] unless 0) only
#: if it still holds what was read (ARGV[1]: its SHA-1, empty when it was missing). Returns {1}
#: when written; {0, value now} when another writer got in first, so the next try needs no GET.
#: One script, so it applies whole or not at all.
SWAP = """
local current = redis.call('GET', KEYS[1])
local seen = current and redis.sha1hex(current) or ''
if seen ~= ARGV[1] then return {0, current} end
if ARGV[2] == '' then redis.call('DEL', KEYS[1])
elseif ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return {1}
"""

#: the lease's renewal (ARGV[2] the holder as now, PX ARGV[3]) and release (ARGV[2] empty), by
#: its holder only: the key must still hold the token ARGV[1]. Returns 1 when done, else 0.
HOLDER_ONLY = """
local current = redis.call('GET', KEYS[1])
if not current or cjson.decode(current)['token'] ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
"""

Change = Callable[[dict[str, Any] | None], Mapping[str, Any] | None]


class RedisStore:
    """State documents in Redis; safe for any number of processes and machines at once."""

    capabilities = CAPABILITIES

    def __init__(
        self,
        settings: RedisSettings,
        namespace: str,
        clock: Clock | None = None,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        lease_seconds: float = DEFAULT_LEASE_SECONDS,
    ) -> None:
        self.settings = settings
        self.pool_size = pool_size
        self.lease_seconds = lease_seconds
        self.location = f"redis {settings.address}"
        self.prefix = settings.prefix(namespace, "state")
        self._lease = settings.prefix(namespace, "lease") + "run"
        self.clock = clock or Clock()
        self._closed = threading.Event()
        try:
            pool = redis.BlockingConnectionPool.from_url(
                settings.url,
                max_connections=pool_size,
                timeout=POOL_WAIT,
                retry=Retry(NoBackoff(), 0),
                **settings.client_options(),
            )
        except ValueError as exc:
            raise StateError(f"{self.location}: {self._clean(exc)}") from None
        self._redis = redis.Redis(connection_pool=pool)
        self._swap = self._redis.register_script(SWAP)
        self._holder_only = self._redis.register_script(HOLDER_ONLY)

    def __repr__(self) -> str:
        return f"RedisStore({self.settings.address!r}, prefix={self.prefix!r})"

    # ------------------------------------------------------------------ documents

    def get(self, key: str) -> dict[str, Any] | None:
        with self._failing(f"state {key!r} in {self.location} cannot be read"):
            raw = self._redis.get(self._key(key))
        return None if raw is None else self._decode(key, raw)

    def set(self, key: str, document: Mapping[str, Any], ttl: float | None = None) -> None:
        name, data, px = self._key(key), self._encode(key, document), _milliseconds(ttl)
        with self._failing(f"state {key!r} cannot be written to {self.location}"):
            self._redis.set(name, data, px=px)

    def delete(self, key: str) -> bool:
        with self._failing(f"state {key!r} in {self.location} cannot be deleted"):
            removed: int = self._redis.delete(self._key(key))
        return removed > 0

    def list_keys(self, prefix: str = "") -> list[str]:
        start = len(self.prefix)
        pattern = redis_scan_pattern(self.prefix + prefix)
        with self._failing(f"state keys under {prefix!r} in {self.location} cannot be listed"):
            names = list(self._redis.scan_iter(match=pattern, count=SCAN_COUNT))
        keys = {_text(raw)[start:] for raw in names}
        # not the core's own records, nor what others wrote there under names no key may have
        return sorted(k for k in keys if not is_internal(k) and key_problem(k) is None)

    def update(self, key: str, change: Change, ttl: float | None = None) -> dict[str, Any] | None:
        name, px = self._key(key), _milliseconds(ttl)
        failure = f"state {key!r} in {self.location} cannot be updated"
        with self._failing(failure):
            raw = self._redis.get(name)
        for attempt in range(MAX_CONFLICTS):
            document = change(None if raw is None else self._decode(key, raw))
            if document is None and raw is None:
                return None
            data = b"" if document is None else self._encode(key, _mapping(key, document))
            with self._failing(failure):
                reply = self._swap(keys=[name], args=[_digest(raw), data, px or 0])
            if reply[0] == 1:
                written: dict[str, Any] | None = json.loads(data) if data else None
                return written
            if attempt < EAGER_TRIES:  # at once, on the value the script answered
                raw = reply[1] if len(reply) > 1 else None
                continue
            self.clock.sleep(_pause(attempt))  # then a pause, and a fresh read after it
            with self._failing(failure):
                raw = self._redis.get(name)
        raise StateError(f"{failure}: other writers changed it {MAX_CONFLICTS} times meanwhile")

    # ------------------------------------------------------------------ the lease

    def take_lease(self, holder: LeaseHolder) -> LeaseHolder | None:
        failure = f"the project's lease in {self.location} cannot be taken"
        px = math.ceil(self.lease_seconds * 1000)
        for _ in range(3):  # the holder may give it back between our SET and our GET
            with self._failing(failure):
                if self._redis.set(self._lease, holder.to_json(), nx=True, px=px):
                    return None
                raw = self._redis.get(self._lease)
            if raw is not None:
                return LeaseHolder.from_json(raw)
        raise StateError(f"{failure}: it changed hands three times meanwhile")

    def renew_lease(self, holder: LeaseHolder) -> bool:
        args: list[str | int] = [
            holder.token,
            holder.to_json(),
            math.ceil(self.lease_seconds * 1000),
        ]
        with self._failing(f"the project's lease in {self.location} cannot be renewed"):
            return bool(self._holder_only(keys=[self._lease], args=args))

    def release_lease(self, holder: LeaseHolder) -> None:
        with suppress(redis.RedisError):  # else it runs out lease_seconds after its renewal
            self._holder_only(keys=[self._lease], args=[holder.token, "", 0])

    def close(self) -> None:
        """Close every connection; the store refuses calls from now on."""
        self._closed.set()
        self._redis.close()
        self._redis.connection_pool.disconnect()

    # ------------------------------------------------------------------ helpers

    def _key(self, key: str) -> str:
        if self._closed.is_set():
            raise StateError(f"the state store {self.location} is closed")
        return self.prefix + check_key(key)

    def _encode(self, key: str, document: Mapping[str, Any]) -> bytes:
        try:
            return json.dumps(document, ensure_ascii=False, sort_keys=True).encode()
        except (TypeError, ValueError) as exc:
            raise StateError(f"state {key!r} is not JSON-serialisable: {exc}") from None

    def _decode(self, key: str, raw: bytes | str) -> dict[str, Any]:
        try:
            document = json.loads(raw)
        except ValueError as exc:
            raise StateError(f"state {key!r} in {self.location} is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise StateError(f"state {key!r} in {self.location} is not a JSON object")
        return document

    @contextmanager
    def _failing(self, what: str) -> Iterator[None]:
        """redis-py's errors inside the block become one-line StateErrors starting with ``what``,
        raised ``from None``: the original, which might say more than it should, is not chained."""
        try:
            yield
        except redis.RedisError as exc:
            raise StateError(f"{what}: {self._reason(exc)}") from None

    def _reason(self, exc: redis.RedisError) -> str:
        settings = self.settings
        if isinstance(exc, redis.TimeoutError):
            return (
                f"Redis did not answer in time (socket_timeout {settings.socket_timeout:g} s, "
                f"connect_timeout {settings.connect_timeout:g} s): is it frozen or overloaded?"
            )
        if isinstance(exc, redis.AuthenticationError):
            return f"Redis refused the credentials of state.redis_url ({self._clean(exc)})"
        if isinstance(exc, redis.ConnectionError):
            return f"cannot reach Redis ({self._clean(exc)})"
        return self._clean(exc)

    def _clean(self, exc: BaseException) -> str:
        """redis-py's message on one line, the password masked should it ever appear."""
        text = " ".join(str(exc).split()) or type(exc).__name__
        password = self.settings.password
        return text.replace(password, "***") if password else text


def _milliseconds(ttl: float | None) -> int | None:
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not (0 < ttl < math.inf):
        raise StateError(f"a state TTL must be a positive number of seconds, not {ttl!r}")
    return max(1, math.ceil(ttl * 1000))


def _digest(raw: bytes | str | None) -> str:
    """What SWAP compares: the SHA-1 of the value read, empty for a missing key."""
    if raw is None:
        return ""
    return hashlib.sha1(raw if isinstance(raw, bytes) else raw.encode()).hexdigest()


def _pause(attempt: int) -> float:
    """A random pause after the ``attempt``-th conflict, growing to at most MAX_BACKOFF."""
    return random.uniform(0, MAX_BACKOFF * min(1.0, (attempt + 1 - EAGER_TRIES) / 8))


def _mapping(key: str, document: object) -> Mapping[str, Any]:
    if not isinstance(document, Mapping):
        raise StateError(
            f"the change to state {key!r} returned {type(document).__name__}, not a mapping or None"
        )
    return document


def _text(name: bytes) -> str:
    """A Redis key name as text; one that is not UTF-8 (never written by the store) as ``""``."""
    try:
        return name.decode()
    except UnicodeDecodeError:
        return ""
