"""What the limiter and the budget keeper share: the client, the project's keys, the Lua scripts,
the clock and the policy for outages.

- **Short timeouts, no retry loop.** redis-py waits seconds by default when Redis is unreachable
  and retries on its own; here connecting and every reply are bounded by ``connect_timeout`` and
  ``socket_timeout`` (0.1 s each) and nothing is retried but a script the server forgot.
  The URL, its password and these timeouts are read by the kit's ``RedisSettings``, as the other
  Redis plugins read theirs.
- **One hash tag per project.** Every key is ``<key_prefix>{qf:<namespace>}:<name>``, so all keys of
  a project hash to one slot and one script can touch them all, on Redis Cluster too.
- **One round trip.** A script is loaded once (``SCRIPT LOAD``) and run by ``EVALSHA``; a server
  that lost it (restarted, ``SCRIPT FLUSH``) answers ``NOSCRIPT`` and it is loaded again, once.
- **Outages.** While Redis cannot be reached, :class:`Outage` refuses (``fail_closed``) or lets
  through (``fail_open``) with one warning per outage, and stops asking Redis for
  :data:`BREAKER_SECONDS` after a failure so a frozen server costs one timeout, not one per call.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from questfoundry.kit import (
    BackendContext,
    BackendUnavailableError,
    Clock,
    ConfigError,
    RedisSettings,
    redis_outage,
)

if TYPE_CHECKING:
    import redis

log = logging.getLogger("questfoundry.limiter.redis")

#: seconds Redis is left alone after a failure: calls are decided by the policy meanwhile
BREAKER_SECONDS = 1.0

Policy = Literal["fail_open", "fail_closed"]


def client_for(server: RedisSettings) -> redis.Redis:
    """A redis-py client for ``server`` with short timeouts and no retries."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    try:
        return redis.Redis.from_url(
            server.url, retry=Retry(NoBackoff(), 0), **server.client_options()
        )
    except ValueError as exc:  # redis-py's word for a URL it cannot read
        raise ConfigError(
            f"is not a usable Redis URL: {reason(exc)}", path="rate_limiting.redis_url"
        ) from None


class Script:
    """A Lua script run by ``EVALSHA`` in one round trip, loaded the first time it is needed."""

    def __init__(self, client: redis.Redis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()
        self._loaded = False

    def __call__(self, keys: Sequence[str], args: Sequence[str | bytes | float]) -> Any:
        from redis.exceptions import NoScriptError

        if not self._loaded:
            self._load()
        try:
            return self._evalsha(keys, args)
        except NoScriptError:  # the server restarted or flushed its scripts: load it once more
            self._load()
            return self._evalsha(keys, args)

    def _evalsha(self, keys: Sequence[str], args: Sequence[str | bytes | float]) -> Any:
        return self.client.execute_command(  # type: ignore[no-untyped-call]
            "EVALSHA", self.sha, len(keys), *keys, *args
        )

    def _load(self) -> None:
        self.sha = self.client.script_load(self.source)
        self._loaded = True


class ServerTime:
    """The time a script runs at: ``""``, meaning the server's ``TIME``, on the real clock.

    A context clock of another kind (a test's fake clock) is the time instead, so time moves
    when the test moves it.
    """

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.real = type(clock) is Clock

    def now(self) -> str:
        return "" if self.real else repr(self.clock.time())


class Outage:
    """The ``on_backend_error`` policy of one backend, with its breaker and its warning: one per
    process and outage, however many objects, threads and calls meet it."""

    def __init__(self, what: str, where: str, policy: Policy, clock: Clock) -> None:
        self.what = what
        self.where = where
        self.policy = policy
        self.clock = clock
        self._lock = threading.Lock()
        self._until = float("-inf")

    @property
    def open(self) -> bool:
        """True while the breaker keeps calls away from Redis."""
        return self.clock.monotonic() < self._until

    def failed(self, reason: str) -> None:
        """Redis did not answer: open the breaker; raise under ``fail_closed``."""
        with self._lock:
            self._until = self.clock.monotonic() + BREAKER_SECONDS
        message = f"{self.what}: Redis at {self.where} cannot be reached ({reason})"
        if self.policy == "fail_closed":
            raise BackendUnavailableError(
                f"{message}; no call is sent while it is down (rate_limiting.on_backend_error: "
                "fail_closed)"
            )
        if redis_outage(self._label(), down=True):
            log.warning(
                "%s; calls go ahead unchecked until it is back (rate_limiting.on_backend_error: "
                "fail_open)",
                message,
            )

    def refuse(self) -> None:
        """A call while the breaker is open: refused under ``fail_closed``, else let through."""
        if self.policy == "fail_closed":
            raise BackendUnavailableError(
                f"{self.what}: Redis at {self.where} did not answer a moment ago; no call is sent "
                "while it is down (rate_limiting.on_backend_error: fail_closed)"
            )

    def recovered(self) -> None:
        if redis_outage(self._label(), down=False):
            log.info("%s: Redis at %s answers again", self.what, self.where)

    def _label(self) -> str:
        return f"{self.what} {self.where}"


def reason(exc: BaseException) -> str:
    """A redis-py error as a few words, never the URL (which may hold a password)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def policy_of(settings: Mapping[str, Any], default: Policy) -> Policy:
    value = settings.get("on_backend_error") or default
    if value not in ("fail_open", "fail_closed"):
        raise ConfigError(
            f"must be fail_open or fail_closed, not {value!r}",
            path="rate_limiting.on_backend_error",
        )
    return value


class RedisBackend:
    """A backend whose every operation is one script call on the project's keys."""

    def __init__(
        self, what: str, settings: Mapping[str, Any], context: BackendContext, default: Policy
    ) -> None:
        server = RedisSettings.read(settings, "rate_limiting", url=None)
        self.client = client_for(server)
        self.prefix = server.prefix(context.namespace, hash_tag=True)
        self.time = ServerTime(context.clock)
        self.outage = Outage(what, server.address, policy_of(settings, default), context.clock)

    def run(
        self, script: Script, keys: Sequence[str], args: Sequence[Any], strict: bool = False
    ) -> Any:
        """The script's answer; None while Redis is down under ``fail_open``.

        Under ``fail_closed``, or with ``strict`` (a read for a report), an outage raises
        :class:`~questfoundry.kit.BackendUnavailableError`.
        """
        from redis.exceptions import RedisError

        if self.outage.open and not strict:
            self.outage.refuse()
            return None
        try:
            answer = script(keys, args)
        except RedisError as exc:
            failure = reason(exc)
        else:
            self.outage.recovered()
            return answer
        # raised here, outside the handler, so no redis-py traceback is chained to the error
        if strict:
            raise BackendUnavailableError(
                f"{self.outage.what}: Redis at {self.outage.where} cannot be reached ({failure})"
            )
        self.outage.failed(failure)
        return None

    def close(self) -> None:
        self.client.close()
