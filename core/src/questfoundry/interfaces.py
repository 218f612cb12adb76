"""What a backend is: the typed protocols every plugin's factory returns, and the values they trade.

A plugin's hook (see :mod:`questfoundry.hookspecs`) returns ``{name: factory}``. A factory is called
as ``factory(settings, context)``: ``settings`` is the plain mapping from config.yml for the backend
(already validated against the schema), ``context`` a :class:`BackendContext`. It returns an object
satisfying one of the protocols below. Backends declare optional features in ``capabilities`` (see
:class:`Capability`) so the core asks what a backend can do instead of asking what it is.

Conformance suites for each protocol live in :mod:`questfoundry.testing`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

Kind = Literal["text", "image"]

#: the generation parameter asking for structured output: ``{"name": str, "schema": JSON Schema}``.
#: A provider maps it onto its API (OpenAI ``response_format`` json_schema, Ollama ``format``,
#: Gemini ``response_schema``) and replies with JSON text of an instance of that schema. Being a
#: parameter, it is part of the cache key.
RESPONSE_SCHEMA = "response_schema"


def response_schema(params: Mapping[str, Any], provider: str) -> tuple[str, dict[str, Any]] | None:
    """The ``(name, JSON Schema)`` of the structured output ``params`` ask for, or None.

    A malformed :data:`RESPONSE_SCHEMA` parameter raises
    :class:`~questfoundry.errors.NonRetriableProviderError` for ``provider``: nothing is sent.
    """
    asked = params.get(RESPONSE_SCHEMA)
    if asked is None:
        return None
    if not (
        isinstance(asked, Mapping)
        and isinstance(asked.get("name"), str)
        and isinstance(asked.get("schema"), Mapping)
    ):
        from questfoundry.errors import NonRetriableProviderError

        raise NonRetriableProviderError(
            f'{RESPONSE_SCHEMA} must be {{"name": <identifier>, "schema": <JSON Schema object>}}',
            provider=provider,
        )
    return asked["name"], dict(asked["schema"])


class Capability:
    """Names of optional features a backend may declare in its ``capabilities``."""

    TTL = "ttl"  #: entries expire on their own after a given number of seconds
    SIZE_LIMIT = "size_limit"  #: the backend evicts to stay under a configured size
    PERSISTENT = "persistent"  #: survives the process
    SHARED = "shared"  #: several processes (or machines) see the same data
    #: multi-key updates are all-or-nothing; a state store: ``update`` is atomic across processes
    ATOMIC = "atomic"
    STREAMING = "streaming"  #: a provider that can stream text chunks
    IMAGES = "images"  #: a provider that can generate images
    #: every method returns at once without I/O, so the async gateway calls it on the event loop
    NON_BLOCKING = "non_blocking"
    #: a cache offering flight locks (:class:`FlightLocking`), so identical calls in several
    #: processes make one provider call
    LOCKS = "locks"
    #: a cache whose ``async def aget(key)`` answers as ``get`` does without blocking, so the
    #: async gateway awaits it instead of sending ``get`` to a worker thread
    ASYNC_GET = "async_get"


# ----------------------------------------------------------------------------- values


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
class Hold:
    """Money a :class:`BudgetKeeper` set aside for one call in flight, until settled or released.

    ``id`` is the keeper's own (opaque) name for it; ``keeper`` is who settles it, so the ledger
    can hand a paid call's cost back to the keeper that made the hold.
    """

    id: str
    provider: str
    amount: Decimal
    keeper: BudgetKeeper = field(compare=False, repr=False)


# ----------------------------------------------------------------------------- context


class Clock:
    """Time as the core sees it. Tests pass a fake one so nothing sleeps for real."""

    def monotonic(self) -> float:
        return time.monotonic()

    def time(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        import asyncio

        await asyncio.sleep(seconds)


@dataclass(frozen=True)
class BackendContext:
    """What every factory receives besides its settings.

    ``project_dir`` is the project's ``.questfoundry`` folder (relative paths in settings resolve
    against its parent); ``namespace`` prefixes every shared key so projects never see each other's
    data; ``clock`` is the time source to use instead of :mod:`time`.
    """

    project_dir: Path
    namespace: str = "default"
    clock: Clock = field(default_factory=Clock)

    def resolve_path(self, value: str | Path) -> Path:
        """A path from config: absolute as given, relative to the project root otherwise."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.project_dir.parent / path


Factory = Callable[[Mapping[str, Any], BackendContext], Any]


# ----------------------------------------------------------------------------- protocols


@runtime_checkable
class CacheBackend(Protocol):
    """Stores reply bytes by key. Values are opaque bytes (JSON made by the core), never pickles.

    ``get`` of a missing, expired or unreadable entry returns None: a broken entry is a miss.

    A backend that cannot reach, open or write its storage never fails a call: ``get`` returns
    None, ``set`` stores nothing, and the backend logs one warning per cause (not one per call),
    trying again later on its own. ``delete``, ``clear``, ``prune`` and ``stats`` raise
    :class:`~questfoundry.errors.BackendUnavailableError` with a one-line message instead, so a
    maintenance command says what went wrong. A backend declaring ``Capability.SIZE_LIMIT``
    does not store a value larger than its whole limit (and drops the older value of that key).
    """

    capabilities: frozenset[str]

    def get(self, key: str) -> bytes | None: ...

    def set(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Store ``value``; ``ttl`` seconds until it expires, None for never."""

    def delete(self, key: str) -> bool: ...

    def clear(self) -> int:
        """Remove every entry; return how many were removed."""

    def prune(self) -> int:
        """Remove expired entries and leftovers of crashes; return how many were removed."""

    def stats(self) -> CacheStats: ...

    def close(self) -> None: ...


class FlightLocking(Protocol):
    """What a cache declaring ``Capability.LOCKS`` adds: one lock per key across processes.

    The gateway takes a key's lock before calling the provider on a miss; the other processes
    asking the same thing wait for the answer to appear in the cache.
    """

    def lock(self, key: str, ttl: float) -> str | None:
        """Take ``key``'s lock for ``ttl`` seconds. Returns a token when taken, None when another
        caller holds it, and ``""`` when locks cannot be used now (go ahead without one).
        Never raises."""

    def unlock(self, key: str, token: str) -> None:
        """Release ``key``'s lock if ``token`` still holds it (never another's). Never raises."""


@runtime_checkable
class Limiter(Protocol):
    """Token buckets, all-or-nothing across several at once.

    Built with the :class:`Rate` list it enforces. Keys look like ``global/requests`` or
    ``provider:openai/tokens``; a key with no configured rate is unlimited.
    """

    capabilities: frozenset[str]

    def acquire(self, amounts: Mapping[str, float]) -> float:
        """Take every amount if every bucket holds enough and return 0.0.

        Otherwise take nothing and return the seconds until all of them would hold enough
        (``math.inf`` when an amount exceeds a bucket's whole limit). Never sleeps.
        """

    def adjust(self, amounts: Mapping[str, float]) -> None:
        """Reconcile after a call: take positive amounts, give back negative ones, never waiting."""

    def levels(self) -> Sequence[BucketLevel]: ...

    def close(self) -> None: ...


@runtime_checkable
class BudgetKeeper(Protocol):
    """Cost budgets (dollars per calendar day or month), enforced before a call is sent.

    A call reserves its estimated cost, then the keeper either settles the hold with the real
    cost (the call was paid) or releases it (the call failed and cost nothing). ``SHARED`` in
    ``capabilities`` means every process using the same store sees one budget.
    """

    capabilities: frozenset[str]

    def reserve(self, provider: str, estimate: Decimal) -> Hold | None:
        """Hold ``estimate`` against every budget that applies to ``provider``.

        Returns None when no budget applies (nothing is held). Raises
        :class:`~questfoundry.errors.CostLimitExceededError` when spent plus held plus
        ``estimate`` would pass a limit; then nothing is held.
        """

    def settle(self, hold: Hold, cost: Decimal | None) -> None:
        """The call was paid: replace ``hold`` by ``cost`` (None: price unknown, counts 0)."""

    def release(self, hold: Hold | None) -> None:
        """The call failed and cost nothing: drop ``hold`` (None does nothing)."""

    def levels(self) -> Sequence[BudgetLevel]:
        """Every configured budget as it stands now, held money included."""

    def close(self) -> None: ...


@runtime_checkable
class CostModel(Protocol):
    """Prices calls in US dollars."""

    def price(self, model: str, usage: Usage) -> Decimal | None:
        """The cost of ``usage`` on ``model``, or None when this model's price is unknown."""


#: keys of a state store's own records (``_qf/schema_version``, the migration journal): only the
#: core's state package writes them, through ``get``/``set``; ``list_keys`` never returns them
INTERNAL_KEY_PREFIX = "_qf/"

#: a whole state as migrations see it: every document by key (internal keys left out)
Snapshot = dict[str, dict[str, Any]]


@runtime_checkable
class StateStore(Protocol):
    """Keeps the project's state documents (JSON objects) by key.

    Keys are non-empty strings of ``/``-separated parts; a key that could name something outside
    the store (``..`` or empty parts, a leading ``/``, ``\\``, NUL or other control characters) is
    refused with :class:`~questfoundry.errors.StateError` by every method
    (:func:`questfoundry.state.keys.check_key` does the check). Every failure is a ``StateError``
    whose one-line message names the key and where the store is (never a password).

    ``capabilities``: ``Capability.TTL`` (``ttl`` is honoured), ``ATOMIC`` (``update`` is atomic
    across processes), ``SHARED`` (several processes — machines, for a network store — may use
    it at once), ``PERSISTENT`` (it outlives the process).
    """

    capabilities: frozenset[str]

    def get(self, key: str) -> dict[str, Any] | None:
        """The document at ``key``, or None when there is none (or it expired)."""

    def set(self, key: str, document: Mapping[str, Any], ttl: float | None = None) -> None:
        """Store ``document`` whole; a crash mid-write leaves the previous version intact.

        ``ttl``: seconds until the document expires, None for never. A store without
        ``Capability.TTL`` raises ``StateError`` for any ``ttl`` (saying it keeps no expiry).
        """

    def delete(self, key: str) -> bool:
        """Remove ``key``; True when there was a document to remove."""

    def list_keys(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix``, sorted; never an internal key (``_qf/…``)."""

    def update(
        self,
        key: str,
        change: Callable[[dict[str, Any] | None], Mapping[str, Any] | None],
        ttl: float | None = None,
    ) -> dict[str, Any] | None:
        """Read-modify-write one key, atomically (across processes under ``ATOMIC``).

        ``change`` receives the current document (None when missing) and returns the new one, or
        None to delete the key. It may be called again when another writer got in first (the
        store re-reads); after a bounded number of such conflicts the store raises
        ``StateError``. An exception from ``change`` propagates and nothing is written. Returns
        the document written (None when the key was deleted). ``ttl`` as for :meth:`set`.
        """

    def close(self) -> None:
        """Release connections and locks; the store is not used afterwards."""


@runtime_checkable
class Provider(Protocol):
    """Talks to one LLM service. Maps the service's failures onto :mod:`questfoundry.errors`:
    ``ProviderRateLimitError`` for 429, ``RetriableProviderError`` for network errors, timeouts and
    5xx, ``NonRetriableProviderError`` for the rest. It never retries by itself: the gateway does.
    """

    name: str
    capabilities: frozenset[str]

    def generate(self, request: ProviderRequest) -> ProviderReply: ...

    async def agenerate(self, request: ProviderRequest) -> ProviderReply: ...

    def stream(self, request: ProviderRequest) -> Iterator[Chunk]: ...

    def astream(self, request: ProviderRequest) -> AsyncIterator[Chunk]: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


# ----------------------------------------------------------------------------- roles and state


@dataclass(frozen=True, slots=True)
class RoleSpec:
    """A role of the studio: its name, whether it makes text or images, and what it does.

    ``kind`` routes the role: an image role is sent to ``providers.image``; ``roles.<name>.kind``
    in config.yml overrides it.
    """

    name: str
    kind: Kind = "text"
    description: str = ""


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a loop: ``role`` does ``run`` once what it ``reads`` is ready.

    ``reads`` and ``writes`` name artifacts (``"topology"``, ``"sections"``, …). A step waits for
    the steps of its loop that write what it reads; a read no step of the loop writes comes from
    the project state an earlier loop left. ``instructions`` are added to the role's own for every
    call the step makes. ``run`` is an async function given a
    :class:`questfoundry.studio.StepContext`: it asks roles through it and saves what it makes.
    """

    name: str
    role: str
    instructions: str
    run: Callable[[Any], Awaitable[None]] = field(compare=False, repr=False)
    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LoopSpec:
    """A loop: a named set of roles the Showrunner runs together, and the steps they take.

    A loop without ``steps`` is named in the catalogue but cannot run yet. Every step's role must
    be one of ``roles``.
    """

    name: str
    roles: tuple[str, ...]
    description: str = ""
    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        strangers = sorted({step.role for step in self.steps} - set(self.roles))
        if strangers:
            raise ValueError(f"loop {self.name!r}: steps name roles it lacks: {strangers}")


@dataclass(frozen=True, slots=True)
class RoleProvider:
    """Which provider and model a role uses, its generation parameters and its kind.

    ``kind`` None means "the role's kind from the catalogue" (the plugin manager fills it in).
    ``sources`` maps each field (``provider``, ``model``, ``kind``, each parameter) to the layer
    that set it: ``override``, ``roles.<role>``, ``providers.<kind>.<provider>``,
    ``providers.<kind>.default``, ``role catalogue`` or ``built-in default``.
    """

    role: str
    provider: str
    model: str
    params: Mapping[str, Any] = field(default_factory=dict)
    kind: Kind | None = None
    sources: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered step of a state schema: ``upgrade`` from ``version - 1`` to ``version``.

    Both functions take a whole :data:`Snapshot` (every document by key) and return the new one;
    they must be pure (no I/O, no clock, the input left untouched) and exact inverses:
    ``downgrade(upgrade(s)) == s`` for every state ``s`` of ``version - 1``. Either may raise
    :class:`~questfoundry.errors.MigrationError` for a state it cannot convert; then nothing is
    written. ``scope`` names whose schema this is: ``questfoundry`` for the core's documents, a
    plugin's distribution name for the documents that plugin keeps; each scope has its own
    chain ``1, 2, 3…`` and its own recorded version.
    """

    version: int
    upgrade: Callable[[Snapshot], Snapshot]
    downgrade: Callable[[Snapshot], Snapshot]
    description: str = ""
    scope: str = "questfoundry"
