"""The application's pieces a plugin's tests drive the plugin through.

A plugin imports QuestFoundry only through :mod:`questfoundry.kit`; its tests, which third parties
copy, through the kit and :mod:`questfoundry.testing`, whose this module names the application:
the config and the plugin manager, a runtime and a Showrunner, the command line (the ``cli`` the
console script runs), a gateway opened on a config, the ledger and budgets, the run lease, and
the helpers that show what the core computes (the effective config, a call's token estimate).
Names load on first use, so importing this module stays cheap (and the command line, which
imports :mod:`questfoundry.testing` for its stand-in, is imported only when a test asks for it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from questfoundry.lazy import lazy_exports

if TYPE_CHECKING:
    from questfoundry.cli import cli
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
    "cli": "questfoundry.cli",
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
    "cli",
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
