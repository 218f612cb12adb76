"""Cost budgets kept in the SQLite ledger: reserve an estimate, then settle the cost or release.

:class:`SQLiteBudgetKeeper` is the first :class:`~questfoundry.contracts.protocols.BudgetKeeper`; a
Redis one (shared across machines) comes with its plugin. Guarantees:

- **A check is O(1) at any ledger size.** It reads the ledger's running totals (one row per scope
  and window) plus the holds of calls in flight, never the rows.
- **Budgets hold across processes.** A reservation reads the totals and the holds and writes its
  hold in one ``BEGIN IMMEDIATE`` transaction, so processes racing one budget are serialised by
  SQLite's write lock: together they pass a limit by at most what one call costs beyond its
  estimate.
- **Holds die with their process.** A hold names its process (:mod:`questfoundry.ledger.processes`);
  the next check drops the holds of a process of this host that is gone, even if its pid was
  reused. A hold made on another host stops counting ``stale_after`` seconds (one hour) after it
  was made.
- **Restarts never reset a budget**: the totals are in the file, not in memory.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from questfoundry.config.rates import budgets_from
from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.protocols import BudgetKeeper, Capability, Hold
from questfoundry.contracts.records import Budget, BudgetLevel
from questfoundry.kit.budgets import refusal
from questfoundry.kit.money import from_pico, to_pico
from questfoundry.ledger.processes import ProcessName, is_gone, this_process

if TYPE_CHECKING:
    import sqlite3

    from questfoundry.config import Config
    from questfoundry.ledger import Ledger
    from questfoundry.registry import PluginManager

__all__ = ["BudgetKeeper", "SQLiteBudgetKeeper", "drop_hold", "open_budgets", "refusal"]

_HOLD = "INSERT INTO holds (provider, amount, time, host, pid, started) VALUES (?, ?, ?, ?, ?, ?)"


def open_budgets(
    config: Config,
    ledger: Ledger,
    context: BackendContext,
    manager: PluginManager | None = None,
) -> BudgetKeeper | None:
    """The keeper of the budgets ``rate_limiting`` configures, or None when there are none.

    A budget keeper a plugin registers under the name ``rate_limiting.backend`` names (the
    ``budget_keepers`` hook; ``manager`` holds the plugins, default: the installed ones) is built
    with ``context``; without one, the budgets are kept in the ledger's SQLite file. A backend
    no plugin registers at all raises :class:`~questfoundry.contracts.errors.PluginNotFoundError`.
    """
    settings = config.section("rate_limiting")
    if not settings.get("enabled", True):
        return None
    budgets = budgets_from(settings)
    if not budgets:
        return None
    name = settings.get("backend")
    if name:
        if manager is None:
            from questfoundry.registry import get_plugin_manager

            manager = get_plugin_manager()
        if name in manager.backends("budget keeper"):
            return manager.create("budget keeper", name, {**settings, "budgets": budgets}, context)
        manager.get("limiter strategy", name)  # a backend nothing registers is an error here too
    return SQLiteBudgetKeeper(ledger, budgets)


def drop_hold(conn: sqlite3.Connection, hold_id: str) -> None:
    """Remove one hold inside the caller's transaction (the ledger's, when a row settles it)."""
    conn.execute("DELETE FROM holds WHERE id = ?", (int(hold_id),))


class SQLiteBudgetKeeper:
    """Budgets whose holds and totals live in the ledger's SQLite file; see the module docstring."""

    capabilities: frozenset[str] = frozenset(
        {Capability.PERSISTENT, Capability.SHARED, Capability.ATOMIC}
    )

    def __init__(self, ledger: Ledger, budgets: Iterable[Budget]) -> None:
        self.ledger = ledger
        self.budgets = tuple(budgets)

    def reserve(self, provider: str, estimate: Decimal) -> Hold | None:
        applying = [budget for budget in self.budgets if budget.applies_to(provider)]
        if not applying:
            return None
        amount = max(0, to_pico(estimate))
        now = self.ledger.clock.time()
        me = this_process()
        with self.ledger.transaction() as conn:
            held = self._live_holds(conn, now, forget=True)
            for budget in applying:
                used = self._used(conn, budget, held, now)
                if used + amount > to_pico(budget.limit):
                    raise refusal(budget, used, estimate)
            cursor = conn.execute(_HOLD, (provider, amount, now, me.host, me.pid, me.started))
        return Hold(str(cursor.lastrowid), provider, from_pico(amount), self)

    def settle(self, hold: Hold, cost: Decimal | None) -> None:
        """Replace ``hold`` by ``cost`` in the totals without a ledger row.

        The pipeline passes the hold to :meth:`Ledger.record` instead, which settles it in the
        row's own transaction; this is for a paid call that has no row.
        """
        now = self.ledger.clock.time()
        with self.ledger.transaction() as conn:
            drop_hold(conn, hold.id)
            if cost is not None:
                self.ledger.add_spent(
                    conn, hold.provider, to_pico(cost), self.ledger.local_day(now)
                )

    def release(self, hold: Hold | None) -> None:
        if hold is None:
            return
        with self.ledger.transaction() as conn:
            drop_hold(conn, hold.id)

    def levels(self) -> Sequence[BudgetLevel]:
        """Every budget as it stands; reads only, so it works on a ledger it cannot write."""
        now = self.ledger.clock.time()
        with self.ledger.reading() as conn:
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
        """Nothing to release: the ledger's owner closes the ledger."""

    # ------------------------------------------------------------------ internals

    def _used(
        self,
        conn: sqlite3.Connection,
        budget: Budget,
        held: list[tuple[str, int]],
        now: float,
    ) -> int:
        """Pico-dollars paid in the budget's window plus those held by calls in flight."""
        paid = self.ledger.spent(conn, budget.scope, budget.period, now)
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
            if gone or (gone is None and made < now - self.ledger.stale_after):
                dead.append((hold_id,))
            else:
                live.append((provider, amount))
        if forget and dead:
            conn.executemany("DELETE FROM holds WHERE id = ?", dead)
        return live
