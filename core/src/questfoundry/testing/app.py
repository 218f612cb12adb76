"""The application's pieces a plugin's tests drive the plugin through, beyond the package's public
names.

A plugin imports QuestFoundry only through :mod:`questfoundry.kit`; its tests, which third parties
copy, reach the application through the package's public names (``from questfoundry import
Config, Runtime, Showrunner, get_plugin_manager, load_config``), the command line
(``questfoundry.cli``, which the console script runs), :mod:`questfoundry.testing`, and this
module: a gateway opened on a config, the ledger and budgets, the run lease, and the
helpers that show what the core computes (the effective config, a call's token estimate). Names
load on first use, so importing this module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from questfoundry.lazy import lazy_exports

if TYPE_CHECKING:
    from questfoundry.config.effective import effective
    from questfoundry.gateway import Gateway
    from questfoundry.gateway.admission import estimate_usage
    from questfoundry.ledger import Ledger, open_ledger
    from questfoundry.ledger.budgets import open_budgets
    from questfoundry.ledger.keeper import SQLiteBudgetKeeper
    from questfoundry.registry import PluginManager
    from questfoundry.runtime import open_gateway
    from questfoundry.studio.lease import ProjectLease

_EXPORTS = {
    "Gateway": "questfoundry.gateway",
    "open_gateway": "questfoundry.runtime",
    "PluginManager": "questfoundry.registry",
    "effective": "questfoundry.config.effective",
    "estimate_usage": "questfoundry.gateway.admission",
    "Ledger": "questfoundry.ledger",
    "open_ledger": "questfoundry.ledger",
    "open_budgets": "questfoundry.ledger.budgets",
    "SQLiteBudgetKeeper": "questfoundry.ledger.keeper",
    "ProjectLease": "questfoundry.studio.lease",
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "Gateway",
    "open_gateway",
    "PluginManager",
    "effective",
    "estimate_usage",
    "Ledger",
    "open_ledger",
    "open_budgets",
    "SQLiteBudgetKeeper",
    "ProjectLease",
]

__getattr__ = lazy_exports(__name__, _EXPORTS)
