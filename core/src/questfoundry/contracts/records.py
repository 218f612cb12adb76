"""The values the core and its backends trade: a call's request and reply, usage, limits, stats.

One record of a call travels the whole pipeline: the gateway's :class:`Reply` is what the cache
stores, the ledger records and observers see (in a :class:`CallEvent`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any, Literal

Kind = Literal["text", "image"]
#: a budget's calendar window, in ``rate_limiting.timezone``
Period = Literal["day", "month"]


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens a call used; ``cached_input_tokens``: input the provider had cached."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class ProviderRequest:
    """What the gateway asks a provider for, after role resolution.

    ``params`` holds generation parameters (temperature, max_tokens, top_p, stop, seed, size, …);
    ``params["response_schema"]`` (see :data:`RESPONSE_SCHEMA`), when present, asks for structured
    output. ``timeout`` is seconds for the whole HTTP call, or None for the provider's default.
    """

    model: str
    messages: tuple[Message, ...] = ()
    prompt: str | None = None
    kind: Kind = "text"
    params: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None


@dataclass(frozen=True, slots=True)
class ProviderReply:
    """A provider's answer: text for text calls, image bytes for image calls."""

    model: str
    text: str | None = None
    image: bytes | None = None
    usage: Usage = Usage()
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """A piece of a streamed reply: text as it arrives; the last chunk may carry the usage."""

    text: str = ""
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What a cache backend holds, and how often it was read.

    ``persistent_counts`` says what ``hits`` and ``misses`` cover: True, every process since the
    cache was created (they outlive the process); False, this backend object since it was opened.
    """

    entries: int
    bytes: int
    hits: int
    misses: int
    persistent_counts: bool = False


@dataclass(frozen=True, slots=True)
class Rate:
    """A limit: at most ``limit`` units per ``period`` seconds, in a bucket named ``key``."""

    key: str
    limit: float
    period: float


@dataclass(frozen=True, slots=True)
class BucketLevel:
    """How full one limiter bucket is right now."""

    key: str
    available: float
    limit: float
    period: float


@dataclass(frozen=True, slots=True)
class BudgetLevel:
    """Where one cost budget stands: ``spent`` counts money held for calls in flight too.

    ``scope`` is a provider name, or None for the budget over all providers; ``period`` is
    ``day`` or ``month`` (calendar, in ``rate_limiting.timezone``).
    """

    scope: str | None
    period: str
    limit: Decimal
    spent: Decimal

    @property
    def available(self) -> Decimal:
        return self.limit - self.spent


@dataclass(frozen=True, slots=True)
class Budget:
    """At most ``limit`` US dollars per calendar ``period``, for one provider or (None) for all."""

    scope: str | None
    period: Period
    limit: Decimal

    def applies_to(self, provider: str) -> bool:
        return self.scope is None or self.scope == provider

    def describe(self) -> str:
        span = "daily" if self.period == "day" else "monthly"
        return f"{span} budget for {self.scope or 'all providers'}"


# ----------------------------------------------------------------------------- calls


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


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a :class:`Request` and how it was obtained.

    This one record travels the whole pipeline, built once with what it needs (a step that adds
    a field makes a new one with :func:`dataclasses.replace`): the cache stores it, the ledger
    records it and observers see it. ``cost`` is None when no cost model knows the model's price.
    ``cache_hit`` replies cost nothing now; ``saved`` is what the original call cost.
    ``coalesced`` means another identical request in flight made the provider call. ``waited`` is
    seconds spent waiting on rate limits, ``waits`` when: each wait's ``(start, seconds)``, its
    start on the runtime clock's monotonic seconds, so a report can tell waits that overlapped
    (concurrent calls held by one limit) from waits one after another. ``chunks`` are the pieces
    of a streamed reply, replayed on a hit.
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
    waits: tuple[tuple[float, float], ...] = ()


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


# ----------------------------------------------------------------------------- state

#: a whole state as migrations see it: every document by key (internal keys left out)
Snapshot = dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of a state schema: ``upgrade`` from ``version - 1`` to ``version``.

    Both functions take a whole :data:`Snapshot` (every document by key) and return the new one;
    they must be pure (no I/O, no clock, the input left untouched) and exact inverses:
    ``downgrade(upgrade(s)) == s`` for every state ``s`` of ``version - 1``. Either may raise
    :class:`~questfoundry.contracts.errors.MigrationError` for a state it cannot convert; then
    nothing is written. ``scope`` names whose schema this is: ``questfoundry`` for the core's
    documents, a plugin's distribution name for the documents that plugin keeps; each scope has its
    own chain ``1, 2, 3…`` and its own recorded version.
    """

    version: int
    upgrade: Callable[[Snapshot], Snapshot]
    downgrade: Callable[[Snapshot], Snapshot]
    description: str = ""
    scope: str = "questfoundry"
