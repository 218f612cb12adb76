"""The application's pieces a plugin's tests drive the plugin through.

A plugin imports QuestFoundry only through :mod:`questfoundry.kit`; its tests, which third parties
copy, through the kit, :mod:`questfoundry.testing` and the command line (``questfoundry.cli``,
the console script's module; the testing package may not import it, as the command line imports
the testing package for its stand-in). This module names the application they drive a plugin
through: the config and the plugin manager, a runtime and a Showrunner, a gateway opened on a
config, the ledger and budgets, the run lease, and the helpers that show what the core computes
(the effective config, a call's token estimate). Names load on first use, so importing this
module stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from questfoundry.lazy import lazy_exports

if TYPE_CHECKING:
    from questfoundry.config import Config, load_config
    from questfoundry.config.effective import effective
    from questfoundry.gateway import Gateway
    from questfoundry.gateway.admission import estimate_usage
    from questfoundry.ledger import Ledger, open_ledger
    from questfoundry.ledger.budgets import open_budgets
    from questfoundry.ledger.keeper import SQLiteBudgetKeeper
    from questfoundry.registry import PluginManager, get_plugin_manager
    from questfoundry.runtime import Runtime, open_gateway
    from questfoundry.studio import Showrunner
    from questfoundry.studio.lease import ProjectLease

_EXPORTS = {
    "Config": "questfoundry.config",
    "load_config": "questfoundry.config",
    "get_plugin_manager": "questfoundry.registry",
    "Runtime": "questfoundry.runtime",
    "Showrunner": "questfoundry.studio",
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
    "Config",
    "load_config",
    "get_plugin_manager",
    "Runtime",
    "Showrunner",
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
