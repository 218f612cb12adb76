"""Finding plugins, checking what they register, and choosing backends from them (see
:mod:`.manager`)."""

from questfoundry.registry.catalogue import BACKEND_HOOKS, Registration
from questfoundry.registry.known import known_plugins
from questfoundry.registry.manager import (
    CORE_DISTRIBUTION,
    ENTRY_POINT_GROUP,
    LOAD_ENV,
    PluginLoadWarning,
    PluginManager,
    get_plugin_manager,
)

__all__ = [
    "BACKEND_HOOKS",
    "CORE_DISTRIBUTION",
    "ENTRY_POINT_GROUP",
    "LOAD_ENV",
    "PluginLoadWarning",
    "PluginManager",
    "Registration",
    "get_plugin_manager",
    "known_plugins",
]
