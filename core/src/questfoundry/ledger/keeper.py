"""The budget keeper ``sqlite``: cost budgets kept in the ledger's own SQLite file.

Registered through the ``budget_keepers`` hook like any keeper (a built-in of the core, listed in
the plugin manager's built-ins), and the default one: ``rate_limiting.backend`` picks a keeper of
its name where one is installed (``redis``), else this one. Its factory finds the ledger's file in
its settings (``ledger_path``, with ``timezone``), which :func:`~questfoundry.ledger.budgets.
open_budgets` adds: plain values, so no engine object travels through the plugin contracts, and
the keeper opens its own :class:`~questfoundry.ledger.file.LedgerFile` on the path.

- **A check is O(1) at any ledger size.** It reads the ledger's running totals (one row per scope
  and window) plus the holds of calls in flight, never the rows.
- **Budgets hold across processes.** A reservation reads the totals and the holds and writes its
  hold in one ``BEGIN IMMEDIATE`` transaction, so processes racing one budget are serialised by
  SQLite's write lock: together they pass a limit by at most what one call costs beyond its
  estimate.
- **Holds die with their process.** A hold names its process (:mod:`questfoundry.ledger.processes`);
  the next check drops the holds of a process of this host that is gone, even if its pid was
  reused. A hold made on another host stops counting ``stale_after`` seconds (one hour) after it
  was made. The ledger settles a hold with its row (in the row's transaction).
- **Restarts never reset a budget**: the totals are in the file, not in memory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from questfoundry.contracts.backends import Backend, BackendContext
from questfoundry.contracts.protocols import Capability, Hold
from questfoundry.contracts.records import Budget, BudgetLevel
from questfoundry.kit import hookimpl
from questfoundry.kit.budgets import budget_refusal
from questfoundry.kit.money import from_pico, to_pico
from questfoundry.ledger.file import LedgerFile, drop_hold
from questfoundry.ledger.processes import ProcessName, is_gone, this_process

_HOLD = "INSERT INTO holds (provider, amount, time, host, pid, started) VALUES (?, ?, ?, ?, ?, ?)"

CAPABILITIES = frozenset({Capability.PERSISTENT, Capability.SHARED, Capability.ATOMIC})


class SQLiteBudgetKeeper:
    """Budgets whose holds and totals live in a ledger file; see the module docstring."""

    capabilities: frozenset[str] = CAPABILITIES

    def __init__(self, file: LedgerFile, budgets: Iterable[Budget], *, owns: bool = False) -> None:
        """Keep ``budgets`` in ``file``; with ``owns``, :meth:`close` closes the file."""
        self.file = file
        self.budgets = tuple(budgets)
        self._owns = owns

    def reserve(self, provider: str, estimate: Decimal) -> Hold | None:
        applying = [budget for budget in self.budgets if budget.applies_to(provider)]
        if not applying:
            return None
        amount = max(0, to_pico(estimate))
        now = self.file.clock.time()
        me = this_process()
        with self.file.transaction() as conn:
            held = self._live_holds(conn, now, forget=True)
            for budget in applying:
                used = self._used(conn, budget, held, now)
                if used + amount > to_pico(budget.limit):
                    raise budget_refusal(budget, used, estimate)
            cursor = conn.execute(_HOLD, (provider, amount, now, me.host, me.pid, me.started))
        return Hold(str(cursor.lastrowid), provider, from_pico(amount), self)

    def settle(self, hold: Hold, cost: Decimal | None) -> None:
        """Replace ``hold`` by ``cost`` in the totals without a ledger row.

        The ledger settles a hold kept in its own file with the call's row instead, in the row's
        transaction; this is for a paid call that has no row.
        """
        now = self.file.clock.time()
        with self.file.transaction() as conn:
            drop_hold(conn, hold.id)
            if cost is not None:
                self.file.add_spent(
                    conn, {(hold.provider, self.file.local_day(now)): to_pico(cost)}
                )

    def release(self, hold: Hold | None) -> None:
        if hold is None:
            return
        with self.file.transaction() as conn:
            drop_hold(conn, hold.id)

    def levels(self) -> Sequence[BudgetLevel]:
        """Every budget as it stands; reads only, so it works on a ledger it cannot write."""
        now = self.file.clock.time()
        with self.file.reading() as conn:
            held = self._live_holds(conn, now, forget=False)
            return [
                BudgetLevel(
                    budget.scope,
                    budget.period,
                    budget.limit,
                    from_pico(self._used(conn, budget, held, now)),
                )
                for budget in self.budgets
            ]

    def close(self) -> None:
        if self._owns:
            self.file.close()

    # ------------------------------------------------------------------ internals

    def _used(
        self,
        conn: sqlite3.Connection,
        budget: Budget,
        held: list[tuple[str, int]],
        now: float,
    ) -> int:
        """Pico-dollars paid in the budget's window plus those held by calls in flight."""
        paid = self.file.spent(conn, budget.scope, budget.period, now)
        return paid + sum(amount for provider, amount in held if budget.applies_to(provider))

    def _live_holds(
        self, conn: sqlite3.Connection, now: float, *, forget: bool
    ) -> list[tuple[str, int]]:
        """(provider, amount) of every hold still counting; with ``forget``, delete the rest.

        A hold stops counting when its process is gone or, for a process this host cannot check,
        ``stale_after`` seconds after it was made.
        """
        rows = conn.execute(
            "SELECT id, provider, amount, time, host, pid, started FROM holds"
        ).fetchall()
        verdicts: dict[ProcessName, bool | None] = {}
        live, dead = [], []
        for hold_id, provider, amount, made, host, pid, started in rows:
            owner = ProcessName(host, pid, started)
            if owner not in verdicts:
                verdicts[owner] = is_gone(owner)
            gone = verdicts[owner]
            if gone or (gone is None and made < now - self.file.stale_after):
                dead.append((hold_id,))
            else:
                live.append((provider, amount))
        if forget and dead:
            conn.executemany("DELETE FROM holds WHERE id = ?", dead)
        return live


def make_sqlite_keeper(settings: Mapping[str, Any], context: BackendContext) -> SQLiteBudgetKeeper:
    """The keeper of ``settings["budgets"]`` in the ledger file ``settings["ledger_path"]``."""
    file = LedgerFile(
        context.resolve_path(Path(settings["ledger_path"])),
        clock=context.clock,
        timezone=settings.get("timezone") or "UTC",
    )
    return SQLiteBudgetKeeper(file, settings.get("budgets", ()), owns=True)


@hookimpl
def budget_keepers() -> Mapping[str, Backend]:
    return {
        "sqlite": Backend(
            make_sqlite_keeper,
            capabilities=CAPABILITIES,
            description="cost budgets kept in the ledger's SQLite file, shared on this machine",
            priority=1,
        )
    }
