"""Opening the budget keeper: the budgets ``rate_limiting`` configures, kept by the keeper a
plugin registers (``budget_keepers``).

The keeper is the one named like ``rate_limiting.backend`` where one is installed (``redis``),
else the installed keeper of highest priority (the core's ``sqlite``, in the ledger's file:
:mod:`questfoundry.ledger.keeper`). Every keeper gets the ``rate_limiting`` section with
``budgets`` (what it enforces), ``ledger_path`` and ``timezone`` (where and in which zone the
ledger counts).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Literal

from questfoundry.config.rates import budgets_from
from questfoundry.contracts.backends import BackendContext
from questfoundry.contracts.errors import PluginNotFoundError
from questfoundry.contracts.protocols import BudgetKeeper

if TYPE_CHECKING:
    from questfoundry.config import Config
    from questfoundry.ledger import Ledger
    from questfoundry.registry import PluginManager

__all__ = ["BudgetKeeper", "open_budgets"]

KIND: Final[Literal["budget keeper"]] = "budget keeper"


def open_budgets(
    config: Config,
    ledger: Ledger,
    context: BackendContext,
    manager: PluginManager | None = None,
) -> BudgetKeeper | None:
    """The keeper of the budgets ``rate_limiting`` configures, or None when there are none.

    ``manager`` holds the plugins (default: the installed ones). A ``rate_limiting.backend`` no
    plugin registers at all raises :class:`~questfoundry.contracts.errors.PluginNotFoundError`.
    """
    settings = config.section("rate_limiting")
    if not settings.get("enabled", True):
        return None
    budgets = budgets_from(settings)
    if not budgets:
        return None
    if manager is None:
        from questfoundry.registry import get_plugin_manager

        manager = get_plugin_manager()
    keepers = manager.backends(KIND)
    name: str = settings.get("backend") or ""
    if name not in keepers:
        if name:
            manager.get("limiter strategy", name)  # a backend nothing registers is an error here
        ranked = sorted(keepers.items(), key=lambda item: (-item[1].priority, item[0]))
        if not ranked:  # every keeper disabled (QUESTFOUNDRY_DISABLE_PLUGINS)
            raise PluginNotFoundError(KIND, name or "for the budgets", [])
        name = ranked[0][0]
    where = {"ledger_path": str(ledger.path), "timezone": settings.get("timezone") or "UTC"}
    return manager.create(KIND, name, {**settings, "budgets": budgets, **where}, context)
