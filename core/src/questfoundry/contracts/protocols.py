"""What a backend is: the typed protocols every plugin's factory returns.

A plugin's hook (see :mod:`questfoundry.contracts.hookspecs`) registers ``{name: factory}``. A
factory is called as ``factory(settings, context)``: ``settings`` is the plain mapping from
config.yml for the backend (already validated against the schema), ``context`` a
:class:`~questfoundry.contracts.backends.BackendContext`. It returns an object satisfying one of
the protocols below. Backends declare optional features in ``capabilities`` (see
:class:`Capability`) so the core asks what a backend can do instead of asking what it is.

Conformance suites for each protocol live in :mod:`questfoundry.testing`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from questfoundry.contracts.records import (
    BucketLevel,
    BudgetLevel,
    CacheStats,
    Chunk,
    ProviderReply,
    ProviderRequest,
    Usage,
)


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
    #: a state store offering :class:`Leasing`: one run at a time holds the project's state
    LEASES = "leases"
    #: a state store offering :class:`Syncing`: its writes reach the disk together, at ``sync()``
    SYNC = "sync"


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


@runtime_checkable
class CacheBackend(Protocol):
    """Stores reply bytes by key. Values are opaque bytes (JSON made by the core), never pickles.

    ``get`` of a missing, expired or unreadable entry returns None: a broken entry is a miss.

    A backend that cannot reach, open or write its storage never fails a call: ``get`` returns
    None, ``set`` stores nothing, and the backend logs one warning per cause (not one per call),
    trying again later on its own. ``delete``, ``clear``, ``prune`` and ``stats`` raise
    :class:`~questfoundry.contracts.errors.BackendUnavailableError` with a one-line message instead,
    so a maintenance command says what went wrong. A backend declaring ``Capability.SIZE_LIMIT``
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
        :class:`~questfoundry.contracts.errors.CostLimitExceededError` when spent plus held plus
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


@runtime_checkable
class StateStore(Protocol):
    """Keeps the project's state documents (JSON objects) by key.

    Keys are non-empty strings of ``/``-separated parts; a key that could name something outside
    the store (``..`` or empty parts, a leading ``/``, ``\\``, NUL or other control characters) is
    refused with :class:`~questfoundry.contracts.errors.StateError` by every method
    (:func:`questfoundry.kit.state_keys.check_key` does the check). Every failure is a
    ``StateError`` whose one-line message names the key and where the store is (never a password).

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


@dataclass(frozen=True, slots=True)
class LeaseHolder:
    """Who holds a project's lease: one run of a loop in one process, and since when.

    ``token`` is the holder's own secret-free random name: a store gives back, renews or lets go
    of a lease only for the holder whose token it carries. ``started`` is wall-clock seconds.
    """

    token: str
    run_id: str
    loop: str
    pid: int
    host: str
    started: float

    def to_json(self) -> str:
        """What a store keeps of its lease's holder."""
        return json.dumps({name: getattr(self, name) for name in self.__slots__})

    @classmethod
    def from_json(cls, raw: str | bytes) -> LeaseHolder:
        """The holder a store kept; an unknown one when it keeps none yet (or a damaged one)."""
        try:
            fields = json.loads(raw)
            return cls(**{name: fields[name] for name in cls.__slots__})
        except (ValueError, TypeError, KeyError):
            return cls("", "", "?", 0, "?", 0.0)

    def describe(self) -> str:
        """``run 1f3a… of story_spark (pid 4242 on atlas, since 2026-01-01 12:00:00 UTC)``."""
        since = datetime.fromtimestamp(self.started, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        run = f"run {self.run_id}" if self.run_id else "a run"
        return f"{run} of {self.loop} (pid {self.pid} on {self.host}, since {since} UTC)"


class Leasing(Protocol):
    """What a state store declaring ``Capability.LEASES`` adds: the project's state held by one
    run at a time, so two runs never write it together.

    ``lease_seconds`` is None when a lease lasts until it is given back, the store noticing its
    holder's death by itself (a file lock the system drops with the process); otherwise the
    seconds a lease lasts unless renewed, and the holder renews it every third of that (a lease
    in Redis whose holder died is free that long after, at most).
    """

    lease_seconds: float | None

    def take_lease(self, holder: LeaseHolder) -> LeaseHolder | None:
        """Take the lease for ``holder`` at once, never waiting: None when taken, else the live
        holder that has it. A dead holder's lease is taken over."""

    def renew_lease(self, holder: LeaseHolder) -> bool:
        """Extend ``holder``'s lease and store its details as given (a run names itself once
        it knows its id); False when the lease is no longer ``holder``'s."""

    def release_lease(self, holder: LeaseHolder) -> None:
        """Give the lease up if ``holder`` has it (never another's); never raises."""


class Syncing(Protocol):
    """What a state store declaring ``Capability.SYNC`` adds: writes that outlive a killed
    writer the moment they return, and outlive a power loss once synced, so a run pays for
    forcing them to the disk once per step rather than once per document.

    ``close()`` syncs too. A store without the capability makes each write as durable as it
    ever will be before the write returns.
    """

    def sync(self) -> None:
        """Make every write of this handle so far survive a power loss; ``StateError`` (one
        line) when the disk refuses, and the next sync tries the same writes again."""


@runtime_checkable
class Provider(Protocol):
    """Talks to one LLM service. Maps the service's failures onto
    :mod:`questfoundry.contracts.errors`: ``ProviderRateLimitError`` for 429,
    ``RetriableProviderError`` for network errors, timeouts and 5xx, ``NonRetriableProviderError``
    for the rest. It never retries by itself: the gateway does.
    """

    name: str
    capabilities: frozenset[str]

    def generate(self, request: ProviderRequest) -> ProviderReply: ...

    async def agenerate(self, request: ProviderRequest) -> ProviderReply: ...

    def stream(self, request: ProviderRequest) -> Iterator[Chunk]: ...

    def astream(self, request: ProviderRequest) -> AsyncIterator[Chunk]: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...
