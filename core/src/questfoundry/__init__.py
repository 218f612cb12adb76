"""QuestFoundry: the layer between a studio of AI roles and the LLM providers they call.

Importing this package is cheap: the public names below load on first use, and no backend's
library (openai, redis, diskcache, …) is imported until a backend is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from questfoundry.contracts.hookspecs import hookimpl
from questfoundry.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "QuestFoundryError": "questfoundry.contracts.errors",
    "ConfigError": "questfoundry.contracts.errors",
    "PluginNotFoundError": "questfoundry.contracts.errors",
    "RateLimitError": "questfoundry.contracts.errors",
    "CostLimitExceededError": "questfoundry.contracts.errors",
    "ProviderError": "questfoundry.contracts.errors",
    "StateError": "questfoundry.contracts.errors",
    "MigrationError": "questfoundry.contracts.errors",
    "LoopError": "questfoundry.contracts.errors",
    "StepError": "questfoundry.contracts.errors",
    "Config": "questfoundry.config",
    "load_config": "questfoundry.config",
    "get_plugin_manager": "questfoundry.registry",
    "Runtime": "questfoundry.runtime",
    "Showrunner": "questfoundry.studio",
    "Role": "questfoundry.studio",
    "Request": "questfoundry.contracts.records",
    "Reply": "questfoundry.contracts.records",
    "CacheMode": "questfoundry.contracts.records",
    "Message": "questfoundry.contracts.records",
    "Usage": "questfoundry.contracts.records",
}

__all__ = [  # noqa: RUF022 - grouped as in _EXPORTS
    "__version__",
    "hookimpl",
    "QuestFoundryError",
    "ConfigError",
    "PluginNotFoundError",
    "RateLimitError",
    "CostLimitExceededError",
    "ProviderError",
    "StateError",
    "MigrationError",
    "LoopError",
    "StepError",
    "Config",
    "load_config",
    "get_plugin_manager",
    "Runtime",
    "Showrunner",
    "Role",
    "Request",
    "Reply",
    "CacheMode",
    "Message",
    "Usage",
]

if TYPE_CHECKING:
    from questfoundry.config import Config, load_config
    from questfoundry.contracts.errors import (
        ConfigError,
        CostLimitExceededError,
        LoopError,
        MigrationError,
        PluginNotFoundError,
        ProviderError,
        QuestFoundryError,
        RateLimitError,
        StateError,
        StepError,
    )
    from questfoundry.contracts.records import CacheMode, Message, Reply, Request, Usage
    from questfoundry.registry import get_plugin_manager
    from questfoundry.runtime import Runtime
    from questfoundry.studio import Role, Showrunner


__getattr__ = lazy_exports(__name__, _EXPORTS)
