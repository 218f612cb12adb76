"""Single flight: identical requests in flight in this process make one provider call.

The first caller of a key leads its flight and settles it with the reply (or the error); the others
wait for that. A caller reads the cache once, before joining, noting :attr:`Flights.landings`;
:meth:`Flights.landed_since` then tells a new leader whether a flight of its key landed since that
read, in which case the answer may now be cached and it reads once more instead of calling the
provider.
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

    def join(self, key: str) -> tuple[Future[T], bool]:
        """The flight for ``key`` and whether the caller leads it (and must :meth:`land` it)."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                return flight, False
            flight = self._flights[key] = Future()
            return flight, True

    def land(
        self, key: str, flight: Future[T], result: T | None, error: BaseException | None
    ) -> None:
        """Settle the flight the caller leads and take it off the board."""
        with self._lock:
            self._flights.pop(key, None)
            self.landings += 1
            landed = self._landed
            landed.pop(key, None)
            landed[key] = self.landings
            if len(landed) > REMEMBERED:
                self._forgotten = landed.pop(next(iter(landed)))
        if error is not None:
            flight.set_exception(error)
        else:
            flight.set_result(result)  # type: ignore[arg-type]
