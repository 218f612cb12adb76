"""Finding plugins and choosing backends from them.

:func:`get_plugin_manager` builds a :class:`PluginManager`: the built-ins in
``questfoundry.default_plugins`` first, then every entry point in the group ``questfoundry``. Each
entry point loads in its own ``try``, so a broken plugin is reported once, by its distribution's
name, and the rest still load. Nothing is loaded at import time: the manager is made by the factory,
so tests and embedders decide what it holds.

Environment:

``QUESTFOUNDRY_DISABLE_PLUGINS``
    Comma-separated entry-point or distribution names not to load; ``*`` disables all external.
``QUESTFOUNDRY_LOAD_PLUGINS``
    Comma-separated names: load only these external plugins (empty: none).
"""

from __future__ import annotations

import difflib
import logging
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import import_module, metadata
from typing import Any

import pluggy

from questfoundry import hookspecs
from questfoundry.errors import DuplicatePluginError, PluginError, PluginNotFoundError
from questfoundry.interfaces import BackendContext, Factory

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "questfoundry"
CORE_DISTRIBUTION = "questfoundry"

#: backend kind → the hook that registers it
BACKEND_HOOKS: dict[str, str] = {
    "cache backend": "cache_backends",
    "limiter strategy": "limiter_strategies",
    "cost model": "cost_models",
    "state store": "state_stores",
    "provider": "providers",
}

#: where a backend that is not installed can be found
KNOWN_DISTRIBUTIONS: dict[tuple[str, str], str] = {
    ("cache backend", "file"): "questfoundry-cache-file",
    ("cache backend", "redis"): "questfoundry-cache-redis",
    ("state store", "redis"): "questfoundry-store-redis",
    ("limiter strategy", "redis"): "questfoundry-limiter-redis",
    ("cost model", "openai"): "questfoundry-pricing-openai",
    ("cost model", "gemini"): "questfoundry-pricing-gemini",
    ("cost model", "ollama"): "questfoundry-pricing-ollama",
    ("provider", "openai"): "questfoundry-provider-openai",
    ("provider", "ollama"): "questfoundry-provider-ollama",
    ("provider", "gemini"): "questfoundry-provider-gemini",
}

DEFAULT_PLUGINS = (
    "questfoundry.default_plugins.memory_cache",
    "questfoundry.default_plugins.token_bucket",
    "questfoundry.default_plugins.sqlite_limiter",
    "questfoundry.default_plugins.file_store",
    "questfoundry.default_plugins.roles",
)


class PluginLoadWarning(UserWarning):
    """An installed plugin could not be loaded; the others still were."""


@dataclass(frozen=True)
class Registration:
    """A backend name, its factory and the plugin that registered it."""

    kind: str
    name: str
    factory: Factory
    plugin: str
    distribution: str


@dataclass
class PluginInfo:
    """One registered plugin and what it contributes, for ``questfoundry plugins``."""

    name: str
    distribution: str
    version: str
    registers: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadFailure:
    """An entry point that failed to load."""

    entry_point: str
    distribution: str
    error: str


class PluginManager:
    """A typed face over :class:`pluggy.PluginManager` that knows QuestFoundry's backend kinds."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[LoadFailure] = []
        self._sources: dict[str, tuple[str, str]] = {}  # plugin name → (distribution, version)
        self._registry: dict[str, dict[str, Registration]] = {}

    @property
    def hook(self) -> Any:
        """The hook relay, e.g. ``manager.hook.resolve_role_provider(...)``."""
        return self.pm.hook

    def register(
        self, plugin: object, name: str, distribution: str = CORE_DISTRIBUTION, version: str = ""
    ) -> None:
        """Register a plugin object (module, class or instance) under ``name``."""
        self.pm.register(plugin, name=name)
        self._sources[name] = (distribution, version or _version_of(distribution))
        self._registry.clear()

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._sources.pop(name, None)
        self._registry.clear()

    def load_entry_points(self, env: Mapping[str, str] = os.environ) -> None:
        """Load every external plugin the environment allows, each in its own ``try``."""
        disabled = _names(env.get("QUESTFOUNDRY_DISABLE_PLUGINS", ""))
        only = env.get("QUESTFOUNDRY_LOAD_PLUGINS")
        allowed = None if only is None else _names(only)
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist_name = ep.dist.name if ep.dist else ep.name
            labels = {ep.name, dist_name}
            if "*" in disabled or labels & disabled:
                continue
            if allowed is not None and not labels & allowed:
                continue
            if self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
                self.register(plugin, ep.name, dist_name, ep.dist.version if ep.dist else "")
            except Exception as exc:
                failure = LoadFailure(ep.name, dist_name, f"{type(exc).__name__}: {exc}")
                self.failures.append(failure)
                warnings.warn(
                    f"plugin {dist_name} ({ep.name}) failed to load: {failure.error}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
        self.check()

    def check(self) -> None:
        """Refuse hook implementations that match no hook (a misspelt hook name)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.pm.get_name(exc.plugin) or type(exc.plugin).__name__
            dist = self._sources.get(name, (name, ""))[0]
            callers = vars(self.pm.hook).items()
            known = [hook for hook, caller in callers if caller.has_spec()]
            unknown = sorted(
                hook
                for hook, caller in callers
                if not caller.has_spec()
                and any(impl.plugin is exc.plugin for impl in caller.get_hookimpls())
            )
            hints = [
                f"{hook!r} (did you mean {close[0]!r}?)" if close else repr(hook)
                for hook in unknown
                for close in [difflib.get_close_matches(hook, known, n=1)]
            ]
            raise PluginError(
                f"plugin {name} ({dist}) implements unknown hooks: {', '.join(hints)}"
            ) from None

    # --------------------------------------------------------------------- backends

    def backends(self, kind: str) -> dict[str, Registration]:
        """Every registered backend of ``kind`` (one of :data:`BACKEND_HOOKS`), by name."""
        if kind not in self._registry:
            self._registry[kind] = self._collect(kind)
        return self._registry[kind]

    def get(self, kind: str, name: str) -> Registration:
        """The registration for ``name``; :class:`PluginNotFoundError` says what is installed."""
        found = self.backends(kind)
        if name in found:
            return found[name]
        close = difflib.get_close_matches(name, list(found), n=1)
        raise PluginNotFoundError(
            kind,
            name,
            list(found),
            distribution=KNOWN_DISTRIBUTIONS.get((kind, name)),
            suggestion=close[0] if close else None,
        )

    def create(
        self, kind: str, name: str, settings: Mapping[str, Any], context: BackendContext
    ) -> Any:
        """Build the backend ``name`` of ``kind`` from its settings."""
        return self.get(kind, name).factory(settings, context)

    def plugins(self) -> list[PluginInfo]:
        """Every registered plugin with its distribution, version and what it registers."""
        infos: dict[str, PluginInfo] = {}
        for name, (dist, version) in self._sources.items():
            infos[name] = PluginInfo(name, dist, version)
        for kind in BACKEND_HOOKS:
            for reg in self.backends(kind).values():
                infos[reg.plugin].registers.setdefault(kind, []).append(reg.name)
        for hook_name, label in (("roles", "role"), ("loops", "loop")):
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                names = [spec.name for spec in impl.function()]
                if names and impl.plugin_name in infos:
                    infos[impl.plugin_name].registers[label] = names
        for hook_name in ("resolve_role_provider", "state_migrations", "call_completed"):
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name in infos:
                    infos[impl.plugin_name].registers.setdefault("hook", []).append(hook_name)
        return sorted(infos.values(), key=lambda i: (i.distribution != CORE_DISTRIBUTION, i.name))

    def _collect(self, kind: str) -> dict[str, Registration]:
        found: dict[str, Registration] = {}
        caller = getattr(self.pm.hook, BACKEND_HOOKS[kind])
        # Call each implementation on its own so a duplicate can name both plugins.
        for impl in caller.get_hookimpls():
            dist = self._sources.get(impl.plugin_name, (impl.plugin_name, ""))[0]
            for name, factory in (impl.function() or {}).items():
                if name in found:
                    first = found[name]
                    raise DuplicatePluginError(
                        f"{kind} {name!r} is registered twice: by {first.plugin} "
                        f"({first.distribution}) and by {impl.plugin_name} ({dist})"
                    )
                found[name] = Registration(kind, name, factory, impl.plugin_name, dist)
        return found


def get_plugin_manager(
    *,
    builtins: bool = True,
    entry_points: bool = True,
    plugins: Iterable[tuple[str, object]] = (),
    env: Mapping[str, str] = os.environ,
) -> PluginManager:
    """A plugin manager: built-ins, then entry points, then the given ``(name, plugin)`` pairs."""
    manager = PluginManager()
    if builtins:
        for module_name in DEFAULT_PLUGINS:
            manager.register(import_module(module_name), f"builtin:{module_name.rsplit('.', 1)[1]}")
    if entry_points:
        manager.load_entry_points(env)
    for name, plugin in plugins:
        manager.register(plugin, name, distribution=name)
    manager.check()
    return manager


def _names(value: str) -> set[str]:
    return {part.strip() for part in value.split(",") if part.strip()}


def _version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""
