"""Finding plugins, checking what they register, and choosing backends from them (see
:mod:`.manager`)."""

from questfoundry.registry.manager import (
    BACKEND_HOOKS,
    CORE_DISTRIBUTION,
    ENTRY_POINT_GROUP,
    LOAD_ENV,
    PluginLoadWarning,
    PluginManager,
    Registration,
    get_plugin_manager,
    known_plugins,
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
