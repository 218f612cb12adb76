"""QuestFoundry: the layer between a studio of AI roles and the LLM providers they call.

Importing this package is cheap: the public names below load on first use, and no backend's
library (openai, redis, diskcache, …) is imported until a backend is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from questfoundry.hookspecs import hookimpl
from questfoundry.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "QuestFoundryError": "questfoundry.errors",
    "ConfigError": "questfoundry.errors",
    "PluginNotFoundError": "questfoundry.errors",
    "RateLimitError": "questfoundry.errors",
    "CostLimitExceededError": "questfoundry.errors",
    "ProviderError": "questfoundry.errors",
    "StateError": "questfoundry.errors",
    "MigrationError": "questfoundry.errors",
    "LoopError": "questfoundry.errors",
    "StepError": "questfoundry.errors",
    "Config": "questfoundry.config",
    "load_config": "questfoundry.config",
    "get_plugin_manager": "questfoundry.plugins",
    "Runtime": "questfoundry.runtime",
    "Showrunner": "questfoundry.studio",
    "Role": "questfoundry.studio",
    "Request": "questfoundry.calls",
    "Reply": "questfoundry.calls",
    "CacheMode": "questfoundry.calls",
    "Message": "questfoundry.interfaces",
    "Usage": "questfoundry.interfaces",
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
    from questfoundry.calls import CacheMode, Reply, Request
    from questfoundry.config import Config, load_config
    from questfoundry.errors import (
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
    from questfoundry.interfaces import Message, Usage
    from questfoundry.plugins import get_plugin_manager
    from questfoundry.runtime import Runtime
    from questfoundry.studio import Role, Showrunner


__getattr__ = lazy_exports(__name__, _EXPORTS)
