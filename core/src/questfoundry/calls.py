"""What a role hands the gateway, what it gets back, and what observers see of each call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any

from questfoundry.interfaces import Kind, Message, Usage


class CacheMode(str, Enum):
    """How one request uses the cache.

    ``default`` reads and writes; ``refresh`` calls the provider and overwrites the entry;
    ``no-store`` reads but never writes; ``off`` neither reads nor writes.
    """

    DEFAULT = "default"
    REFRESH = "refresh"
    NO_STORE = "no-store"
    OFF = "off"


@dataclass(frozen=True)
class Request:
    """One call a role makes. ``provider``/``model`` left empty are resolved from the role's config.

    ``params`` are generation parameters (temperature, max_tokens, …) and override the role's;
    ``cache`` and ``cache_ttl`` control the cache for this request only.
    """

    messages: Sequence[Message | Mapping[str, str]] = ()
    prompt: str | None = None
    role: str | None = None
    provider: str | None = None
    model: str | None = None
    kind: Kind | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    cache: CacheMode | str = CacheMode.DEFAULT
    cache_ttl: float | None = None
    timeout: float | None = None


@dataclass(slots=True)
class Reply:
    """The answer to a :class:`Request` and how it was obtained (treat it as read-only).

    This one record travels the whole pipeline: the cache stores it, the ledger records it and
    observers see it. ``cost`` is None when no cost model knows the model's price. ``cache_hit``
    replies cost nothing now; ``saved`` is what the original call cost. ``coalesced`` means
    another identical request in flight made the provider call. ``waited`` is seconds spent
    waiting on rate limits. ``chunks`` are the pieces of a streamed reply, replayed on a hit.
    """

    provider: str
    model: str
    text: str | None = None
    image: bytes | None = None
    usage: Usage = Usage()
    cost: Decimal | None = None
    saved: Decimal | None = None
    cache_hit: bool = False
    coalesced: bool = False
    retries: int = 0
    waited: float = 0.0
    latency: float = 0.0
    role: str | None = None
    key: str = ""
    run_id: str = ""
    finish_reason: str | None = None
    chunks: tuple[str, ...] | None = None


class Outcome(str, Enum):
    """How a call ended, as observers see it."""

    HIT = "hit"  #: answered from the cache
    MISS = "miss"  #: answered by the provider
    COALESCED = "coalesced"  #: answered by an identical request in flight
    ERROR = "error"  #: failed before any reply
    STREAM_FINISHED = "stream_finished"  #: a streamed reply read to its end
    STREAM_FAILED = "stream_failed"  #: a stream that broke after it started
    STREAM_ABANDONED = "stream_abandoned"  #: a stream the caller stopped reading


@dataclass(frozen=True)
class CallEvent:
    """What ``call_completed`` observers see: the reply, or the error a call ended with."""

    provider: str
    model: str
    role: str | None
    reply: Reply | None
    error: BaseException | None = None
    outcome: Outcome = Outcome.MISS
