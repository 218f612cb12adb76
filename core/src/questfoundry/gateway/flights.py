"""Single flight: identical requests in flight in this process make one provider call.

The first caller of a key leads its flight and settles it with the reply (or the error); the others
wait for that. A caller reads the cache once, before joining, noting :attr:`Flights.landings`;
:meth:`Flights.landed_since` then tells a new leader whether a flight of its key landed since that
read, in which case the answer may now be cached and it reads once more instead of calling the
provider.

A flight whose reply is still on its way to a cache that blocks stays on the board after it lands
(:meth:`Flights.land` with ``kept``) until :meth:`Flights.release`: a caller joining it then gets
the answer at once.
"""

from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")


#: keys whose last landing is remembered; beyond, a landing of a forgotten key is assumed recent
REMEMBERED = 4096


class Flights(Generic[T]):
    """Flights by cache key; safe across threads and event loops."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, Future[T]] = {}
        self.landings = 0  #: how many flights have landed; read before the cache lookup
        self._landed: dict[str, int] = {}  #: key -> the number of its last landing
        self._forgotten = 0  #: the latest landing number dropped from ``_landed``

    def landed_since(self, key: str, mark: int) -> bool:
        """Whether a flight of ``key`` landed after :attr:`landings` was ``mark``."""
        last = self._landed.get(key)
        return last > mark if last is not None else self._forgotten > mark

    def join(self, key: str, *, landed: bool = True) -> tuple[Future[T], bool]:
        """The flight for ``key`` and whether the caller leads it (and must :meth:`land` it).

        ``landed=False``: a flight that already landed is not joined (a caller who must not read
        a cached answer leads a new one in its place).
        """
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None and (landed or not flight.done()):
                return flight, False
            flight = self._flights[key] = Future()
            return flight, True

    def land(
        self,
        key: str,
        flight: Future[T],
        result: T | None,
        error: BaseException | None,
        *,
        kept: bool = False,
    ) -> None:
        """Settle the flight the caller leads; take it off the board unless ``kept``."""
        with self._lock:
            if not kept:
                self._remove(key, flight)
            self._count(key)
        if error is not None:
            flight.set_exception(error)
        else:
            flight.set_result(result)  # type: ignore[arg-type]

    def release(self, key: str, flight: Future[T]) -> None:
        """Take a kept flight off the board (its answer is in the cache now)."""
        with self._lock:
            self._remove(key, flight)
            self._count(key)

    def _count(self, key: str) -> None:
        self.landings += 1
        landed = self._landed
        landed.pop(key, None)
        landed[key] = self.landings
        if len(landed) > REMEMBERED:
            oldest = next(iter(landed))
            self._forgotten = landed.pop(oldest)

    def _remove(self, key: str, flight: Future[T]) -> None:
        if self._flights.get(key) is flight:
            del self._flights[key]
