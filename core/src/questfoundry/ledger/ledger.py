"""The cost ledger: a SQLite row per paid call and counts of cache hits, written off the caller's
path and never lost.

Guarantees:

- **A paid call is never lost.** Before a request is sent, :meth:`Ledger.intend` appends its
  intent to this ledger's journal (:mod:`questfoundry.ledger.journal`); :meth:`Ledger.record`
  appends the reply's row there before it returns. A background writer moves the rows to SQLite
  in batches, within ``flush_interval`` seconds and on :meth:`~Ledger.flush`,
  :meth:`~Ledger.close` and interpreter exit. The journal of a process killed at any moment is
  settled by the next ledger to open the file (and by running ones every
  :data:`RESCAN_SECONDS`): rows not yet in SQLite are written, and intents without a reply
  become *unconfirmed* rows at their estimated cost, counted in calls, reports and budgets.
- **A ledger that cannot be written loses nothing.** Rows wait in memory and in the journal while
  SQLite refuses them (locked beyond ``busy_timeout``, read-only, a failing disk) and are retried
  with one warning; a ledger closed meanwhile leaves its journal to the next open.
- **Checks and reports cost the same at a thousand rows and at a million**: each batch updates,
  in its transaction, the running totals budgets read (:mod:`.file`) and the rollup ``cost
  report`` reads (:mod:`.reports`).
- **Budgets are settled before** :meth:`~Ledger.record` **returns**, so a budget near its limit
  counts what calls really cost, not their estimates: a hold of the SQLite budget keeper
  (:mod:`.keeper`, in this file) goes with its row, written at once in one transaction (with
  every row waiting); a hold of another keeper is settled with that keeper, and its row waits
  for the writer. Calls under no budget hold nothing and pay for no write.
- **Cache hits cost nothing and wait in memory**: :meth:`Ledger.record_hit` only appends to a
  buffer the writer empties, counting them in one row per local day, provider, model, role and
  run (the ``hits`` table), not a row each: however many hits a batch holds, it writes a few
  rows. ``cost report`` and its hit counts are exact all the same.

Money is stored as whole pico-dollars (:mod:`questfoundry.kit.money`) in INTEGER columns, so sums
are exact; ``NULL`` cost means the price was unknown. The ledger has no column for secrets. One
:class:`Ledger` serves every thread of a process; a ledger inherited through ``fork`` writes only
what the child records, in a journal of its own.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import deque
from contextlib import suppress
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from questfoundry.contracts.backends import BackendContext, Clock
from questfoundry.contracts.errors import LedgerError, QuestFoundryError
from questfoundry.contracts.protocols import Hold
from questfoundry.kit.money import from_pico, optional_pico
from questfoundry.ledger import journal, recovery, reports
from questfoundry.ledger.file import LedgerFile, drop_hold, holds_here
from questfoundry.ledger.journal import Journal
from questfoundry.ledger.rows import Row, row_of, write_hits, write_rows

if TYPE_CHECKING:
    from questfoundry.config import Config
    from questfoundry.contracts.records import Reply, Usage

__all__ = ["Ledger", "open_ledger"]

logger = logging.getLogger(__name__)

DEFAULT_PATH = ".questfoundry/ledger.sqlite"
#: seconds between two looks of a running ledger for journals whose process is gone
RESCAN_SECONDS = 60.0
_MAX_PENDING_HITS = 1_000_000
_Q = TypeVar("_Q")


class _Paid(NamedTuple):
    """A paid call's row waiting for the writer, with its number in the journal and its hold."""

    number: int
    row: Row
    hold: Hold | None
    here: bool  #: the hold is kept in this file: the row's transaction drops it


def open_ledger(config: Config, context: BackendContext) -> Ledger:
    """The ledger config.yml names (``pricing.ledger_path``), in ``rate_limiting.timezone``."""
    return Ledger(
        context.resolve_path(config.get("pricing.ledger_path", DEFAULT_PATH)),
        clock=context.clock,
        timezone=config.get("rate_limiting.timezone", "UTC"),
    )


class Ledger:
    """The persistent record of every call; see the module docstring for its guarantees."""

    def __init__(
        self,
        path: Path,
        *,
        clock: Clock | None = None,
        timezone: str = "UTC",
        flush_interval: float = 1.0,
        stale_after: float = 3600.0,
        busy_timeout: float = 30.0,
    ) -> None:
        """Open (creating or migrating if needed) the ledger at ``path``, then settle what gone
        processes left in its journals.

        ``flush_interval`` is the most seconds a row waits in memory; see
        :class:`~questfoundry.ledger.file.LedgerFile` for the rest.
        """
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        self.file = LedgerFile(
            path, clock=clock, timezone=timezone, busy_timeout=busy_timeout, stale_after=stale_after
        )
        self.path = self.file.path
        self.clock = self.file.clock
        self.journal = Journal(journal.folder_of(self.path))
        self._flush_interval = flush_interval
        self._paid: deque[_Paid] = deque()
        self._hits: deque[tuple[Reply, float]] = deque(maxlen=_MAX_PENDING_HITS)
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None
        self._failing = False
        self._closed = False
        self._scanned = time.monotonic()
        _open_ledgers.add(self)
        self.recover()

    # ------------------------------------------------------------------ writing calls

    def intend(
        self,
        provider: str,
        model: str,
        estimate: Usage,
        cost: Decimal | None,
        *,
        role: str | None = None,
        run_id: str = "",
        hold: Hold | None = None,
    ) -> int:
        """Write that a paid call is about to be sent (one append, no I/O wait); its number.

        ``estimate`` and ``cost`` are what the call is expected to use and cost: what the ledger
        counts if the process dies before :meth:`record` or :meth:`void` settles the number.
        """
        kept = hold.id if hold is not None and holds_here(hold.keeper, self.file) else None
        number = self.journal.intend(
            (
                self.clock.time(),
                provider,
                model,
                role,
                run_id,
                estimate.input_tokens,
                estimate.output_tokens,
                optional_pico(cost),
                kept,
            )
        )
        self._after_append()
        return number

    def record(self, reply: Reply, hold: Hold | None = None, intent: int | None = None) -> None:
        """Record one paid call (settling its ``intent``) and, with its row, its ``hold``.

        The row is in the journal when this returns and in SQLite within ``flush_interval``
        seconds (at once with a hold kept in this file); never raises for a write that fails
        (see the module docstring).
        """
        when = self.clock.time()
        row = row_of(reply, when, self.file.local_day(when))
        if hold is None:
            number = self.journal.settle(intent, None, row)
            self._paid.append(_Paid(number, row, None, False))
            self._after_append()
            return
        here = holds_here(hold.keeper, self.file)
        number = self.journal.settle(intent, hold.id if here else None, row)
        call = _Paid(number, row, hold, here)
        self._paid.append(call if here else self._settle_outside(call))
        self._after_append()
        if here and not self._closed:  # the hold's money is the row's: write both now
            self._flush_now()

    def void(self, intent: int) -> None:
        """Settle ``intent`` with nothing: the call failed before any answer."""
        self.journal.void(intent)
        self.journal.progress.done((intent,))
        self._after_append()

    def record_hit(self, reply: Reply) -> None:
        """Queue a cache hit (or a coalesced reply) for the background writer: no I/O here.

        It costs nothing; ``reply.saved`` is what it would have cost. A hit that cannot be a
        row (a saved amount that is not a number) is dropped by the writer with a warning.
        """
        if self._closed:
            raise LedgerError(f"cost ledger {self.path} is closed")
        self._hits.append((reply, self.clock.time()))
        if self._flusher is None:
            self._start_flusher()

    def flush(self) -> None:
        """Write every waiting row now; raises :class:`LedgerError` (keeping them) on failure."""
        with self._flush_lock:
            paid = _take_all(self._paid)
            hits = _take_all(self._hits)
            if not paid and not hits:
                return
            numbers = [call.number for call in paid]
            try:
                with self.file.transaction() as conn:
                    write_rows(self.file, conn, [call.row for call in paid])
                    write_hits(conn, hits, self.file.local_day)
                    for call in paid:
                        if call.here and call.hold is not None:
                            drop_hold(conn, call.hold.id)
                    if numbers:
                        recovery.store_progress(conn, self.journal, numbers)
            except LedgerError:
                self._paid.extendleft(reversed(paid))
                self._hits.extendleft(reversed(hits))
                raise
            self.journal.progress.done(numbers)
            self.journal.retire()

    # ------------------------------------------------------------------ reports

    def report(
        self, by: reports.ReportBy = "provider", since: date | None = None
    ) -> list[reports.ReportRow]:
        """Totals per provider, provider/model, role or local day, in key order.

        ``since`` keeps rows from that local date on. Holds of calls in flight are left out;
        waiting rows are written first so the report includes them. Reads the rollup, so it takes
        as long at a million rows as at a thousand.
        """
        reports.check_grouping(by)
        self.flush()
        with self.file.reading() as conn:
            return reports.report(conn, by, since)

    # ------------------------------------------------------------------ journals left behind

    def recover(self) -> None:
        """Settle the journals whose process is gone (see :mod:`questfoundry.ledger.recovery`)."""
        self._scanned = time.monotonic()
        recovery.settle_left_behind(self.file, self.journal)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Stop the background writer, write what waits, close. Idempotent."""
        if self._closed:
            return
        self._stop.set()
        if self._flusher is not None and self._flusher is not threading.current_thread():
            self._flusher.join()
        try:
            self.flush()
        except LedgerError as exc:
            logger.warning("paid calls wait in the journal for the next open: %s", exc)
        finally:
            self._closed = True
            _open_ledgers.discard(self)
            self.journal.close(remove=self._all_written())
            self.file.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _all_written(self) -> bool:
        """Every call this journal numbered is in SQLite or void: its files may go."""
        return not self._paid and self.journal.progress.below >= self.journal.numbered

    def _after_append(self) -> None:
        if self._closed:  # nobody will write it here: leave it to the next open
            self.journal.close(remove=False)
        elif self._flusher is None:
            self._start_flusher()

    def _flush_now(self) -> None:
        with suppress(LedgerError):  # the rows wait: the writer retries, and says so
            self.flush()

    def _settle_outside(self, call: _Paid) -> _Paid:
        """Settle a hold kept by another keeper (once: the call then holds nothing)."""
        hold = call.hold
        if hold is None or call.here:
            return call
        cost = None if call.row.cost is None else from_pico(call.row.cost)
        try:
            hold.keeper.settle(hold, cost)
        except QuestFoundryError as exc:  # the call is paid: its row must still be written
            logger.warning("budget hold %s not settled: %s", hold.id, exc)
        return call._replace(hold=None)

    def _background_write(self) -> None:
        try:
            self.flush()
        except LedgerError as exc:
            if not self._failing:
                logger.warning("calls not written to the ledger yet: %s", exc)
            self._failing = True
        else:
            if self._failing:
                logger.warning("cost ledger %s: the waiting calls are written now", self.path)
            self._failing = False
        if time.monotonic() - self._scanned > RESCAN_SECONDS:
            self.recover()

    def _start_flusher(self) -> None:
        with self._start_lock:
            if self._flusher is not None or self._closed:
                return
            thread = threading.Thread(
                target=_flush_loop,
                args=(weakref.ref(self), self._stop, self._flush_interval),
                name=f"questfoundry-ledger-{self.path.name}",
                daemon=True,
            )
            self._flusher = thread
            thread.start()

    def _after_fork(self) -> None:
        """In a forked child: the parent writes what it recorded; the child starts afresh."""
        self.journal.forked()
        self._paid.clear()
        self._hits.clear()
        self._flush_lock = threading.Lock()
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._flusher = None


def _take_all(queue: deque[_Q]) -> list[_Q]:
    taken = []
    while queue:
        taken.append(queue.popleft())
    return taken


def _flush_loop(ref: weakref.ref[Ledger], stop: threading.Event, interval: float) -> None:
    """Write waiting rows every ``interval`` seconds; holds only a weak reference to the ledger."""
    while not stop.wait(interval):
        ledger = ref()
        if ledger is None:
            return
        ledger._background_write()
        del ledger


_open_ledgers: weakref.WeakSet[Ledger] = weakref.WeakSet()


@atexit.register
def _flush_open_ledgers() -> None:
    """At interpreter exit, write what every open ledger still holds."""
    for ledger in list(_open_ledgers):
        try:
            ledger.flush()
        except LedgerError as exc:
            logger.warning("calls left in the journal at exit: %s", exc)
        else:
            if ledger._all_written():
                ledger.journal.close(remove=True)


def _forked() -> None:
    for ledger in list(_open_ledgers):
        ledger._after_fork()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_forked)
