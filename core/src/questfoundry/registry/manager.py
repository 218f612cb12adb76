"""Finding plugins, checking what they register, and choosing backends from them.

:func:`get_plugin_manager` builds a :class:`PluginManager`: the built-ins in
``questfoundry.builtins`` first, then every entry point in the group ``questfoundry``, then
any plugins passed in. Nothing is loaded at import time: the manager is made by the factory, so
tests and embedders decide what it holds.

A broken plugin never takes the tool down. A plugin that fails to import, implements a hook that
does not exist (a misspelt name), registers a name another plugin already took, or contributes a
duplicate role or a loop over unknown roles is *disabled*: unregistered, reported once with a
:class:`PluginLoadWarning` naming its distribution and ``QUESTFOUNDRY_DISABLE_PLUGINS``, and listed
in :attr:`PluginManager.failures`. Everything else keeps working; a config that names a backend only
the disabled plugin provides gets an error saying so.

Environment:

``QUESTFOUNDRY_DISABLE_PLUGINS``
    Comma-separated entry-point or distribution names not to load; ``*`` disables all external.
``QUESTFOUNDRY_LOAD_PLUGINS``
    Comma-separated names: load only these external plugins (empty: none).
"""

from __future__ import annotations

import difflib
import os
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from importlib import import_module, metadata
from typing import Any, Literal, overload

import pluggy

from questfoundry.contracts import hookspecs
from questfoundry.contracts.backends import GENERATION_PARAMETERS, BackendContext
from questfoundry.contracts.errors import DuplicatePluginError, PluginError, PluginNotFoundError
from questfoundry.contracts.protocols import (
    BudgetKeeper,
    CacheBackend,
    CostModel,
    Limiter,
    Provider,
    StateStore,
)
from questfoundry.contracts.studio import LoopSpec, RoleProvider, RoleSpec
from questfoundry.registry.catalogue import (
    BACKEND_HOOKS,
    Catalogue,
    Refused,
    Registration,
    backends_offered,
    offers,
)
from questfoundry.registry.known import known_distribution

ENTRY_POINT_GROUP = "questfoundry"
CORE_DISTRIBUTION = "questfoundry"
DISABLE_ENV = "QUESTFOUNDRY_DISABLE_PLUGINS"
LOAD_ENV = "QUESTFOUNDRY_LOAD_PLUGINS"
#: the source of a value a plugin's ``resolve_role_provider`` chose without labelling it
PLUGIN_RESOLVER = "a plugin's resolve_role_provider"

#: the protocol each kind's factories return
PROTOCOLS: dict[str, type] = {
    "cache backend": CacheBackend,
    "limiter strategy": Limiter,
    "budget keeper": BudgetKeeper,
    "cost model": CostModel,
    "state store": StateStore,
    "provider": Provider,
}

#: hooks listed by ``questfoundry plugins`` besides registrations, with how they are shown
HOOK_LABELS = {
    "resolve_role_provider": "resolve_role_provider",
    "state_migrations": "state_migrations",
    "call_completed": "call_completed",
}

DEFAULT_PLUGINS = (
    "questfoundry.builtins.memory_cache",
    "questfoundry.builtins.token_bucket",
    "questfoundry.builtins.sqlite_limiter",
    "questfoundry.builtins.file_store",
    "questfoundry.builtins.roles",
    "questfoundry.ledger.keeper",
)


class PluginLoadWarning(UserWarning):
    """An installed plugin was disabled (it failed to load or conflicts); the others still work."""


@dataclass
class PluginInfo:
    """One plugin and what it contributes, for ``questfoundry plugins``; ``error``: why disabled."""

    name: str
    distribution: str
    version: str
    registers: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    #: ``"<kind> <name>"`` → the registration's one-line description, where it gave one
    descriptions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoadFailure:
    """A plugin that was disabled, why, and what it would have registered (when that is known)."""

    entry_point: str
    distribution: str
    error: str
    version: str = ""
    provides: tuple[tuple[str, str], ...] = ()


class PluginManager:
    """A typed face over :class:`pluggy.PluginManager` that knows QuestFoundry's backend kinds."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[LoadFailure] = []
        self._sources: dict[str, tuple[str, str]] = {}  # plugin name → (distribution, version)
        self._catalogue: Catalogue | None = None

    @property
    def hook(self) -> Any:
        """The hook relay, e.g. ``manager.hook.resolve_role_provider(...)``."""
        return self.pm.hook

    def register(
        self, plugin: object, name: str, distribution: str = CORE_DISTRIBUTION, version: str = ""
    ) -> None:
        """Register a plugin object (module, class or instance) under ``name``.

        Nothing is checked yet: :meth:`check` (which the factory calls) disables what conflicts.
        """
        self.pm.register(plugin, name=name)
        self._sources[name] = (distribution, version or _version_of(distribution))
        self._catalogue = None

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._sources.pop(name, None)
        self._catalogue = None

    def load_entry_points(self, env: Mapping[str, str] = os.environ) -> None:
        """Load every external plugin the environment allows, each in its own ``try``."""
        disabled = _names(env.get(DISABLE_ENV, ""))
        only = env.get(LOAD_ENV)
        allowed = None if only is None else _names(only)
        for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
            dist_name = ep.dist.name if ep.dist else ep.name
            version = ep.dist.version if ep.dist else ""
            labels = {ep.name, dist_name}
            if "*" in disabled or labels & disabled:
                continue
            if allowed is not None and not labels & allowed:
                continue
            if self.pm.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:
                self._fail(ep.name, dist_name, version, f"failed to load: {_describe(exc)}")
                continue
            self.register(plugin, ep.name, dist_name, version)

    def check(self) -> None:
        """Disable every plugin with a misspelt hook or a conflicting registration, warning once.

        Idempotent; the factory calls it after loading, and it runs again after :meth:`register`.
        """
        for name in list(self._sources):
            plugin = self.pm.get_plugin(name)
            unknown = sorted(
                caller.name
                for caller in self.pm.get_hookcallers(plugin) or ()
                if not caller.has_spec()
            )
            if unknown:
                hints = _hints(unknown, self._known())
                self._disable(name, f"implements unknown hooks: {hints}", self._provides(name))
        self._build()

    # --------------------------------------------------------------------- backends

    def backends(self, kind: str) -> dict[str, Registration]:
        """Every registered backend of ``kind`` (one of :data:`BACKEND_HOOKS`), by name."""
        return self._build().backends.get(kind, {})

    def get(self, kind: str, name: str) -> Registration:
        """The registration for ``name``; :class:`PluginNotFoundError` says what to do instead."""
        found = self.backends(kind)
        if name in found:
            return found[name]
        close = difflib.get_close_matches(name, list(found), n=1)
        failed = self.failure_providing(kind, name)
        raise PluginNotFoundError(
            kind,
            name,
            list(found),
            distribution=None if failed else known_distribution(kind, name),
            suggestion=close[0] if close else None,
            disabled=f"{failed.distribution} ({failed.error})" if failed else None,
        )

    @overload
    def create(
        self,
        kind: Literal["cache backend"],
        name: str,
        settings: Mapping[str, Any],
        context: BackendContext,
    ) -> CacheBackend: ...

    @overload
    def create(
        self,
        kind: Literal["limiter strategy"],
        name: str,
        settings: Mapping[str, Any],
        context: BackendContext,
    ) -> Limiter: ...

    @overload
    def create(
        self,
        kind: Literal["budget keeper"],
        name: str,
        settings: Mapping[str, Any],
        context: BackendContext,
    ) -> BudgetKeeper: ...

    @overload
    def create(
        self,
        kind: Literal["cost model"],
        name: str,
        settings: Mapping[str, Any],
        context: BackendContext,
    ) -> CostModel: ...

    @overload
    def create(
        self,
        kind: Literal["state store"],
        name: str,
        settings: Mapping[str, Any],
        context: BackendContext,
    ) -> StateStore: ...

    @overload
    def create(
        self,
        kind: Literal["provider"],
        name: str,
        settings: Mapping[str, Any],
        context: BackendContext,
    ) -> Provider: ...

    def create(
        self, kind: str, name: str, settings: Mapping[str, Any], context: BackendContext
    ) -> object:
        """Build the backend ``name`` of ``kind`` from its settings, typed as its protocol.

        A factory that returns something that is not that protocol is a :class:`PluginError`
        naming the plugin, here rather than at the first call that would trip over it.
        """
        registration = self.get(kind, name)
        backend = registration.factory(settings, context)
        protocol = PROTOCOLS[kind]
        if not isinstance(backend, protocol):
            raise PluginError(
                f"{kind} {name!r} of {registration.plugin} ({registration.distribution}) built "
                f"a {type(backend).__name__}, which is not a {protocol.__name__}"
            )
        return backend

    def failure_providing(self, kind: str, name: str) -> LoadFailure | None:
        """The disabled plugin that would have registered ``name``, if one is known."""
        for failure in self.failures:
            if (kind, name) in failure.provides:
                return failure
            if failure.distribution == known_distribution(kind, name):
                return failure
        return None

    # --------------------------------------------------------------------- roles

    def roles(self) -> dict[str, RoleSpec]:
        """The role catalogue: every role the enabled plugins contribute, by name."""
        return {name: spec for name, (spec, _) in self._build().roles.items()}

    def loops(self) -> dict[str, LoopSpec]:
        """Every loop the enabled plugins contribute, by name; each names only known roles."""
        return {name: spec for name, (spec, _) in self._build().loops.items()}

    def resolve_role(
        self, role: str, config: Mapping[str, Any], override: Mapping[str, Any] | None = None
    ) -> RoleProvider:
        """Which provider, model and parameters ``role`` uses: the one way every caller (the
        gateway, the CLI, the tests) routes a role.

        ``resolve_role_provider`` is asked with the role's catalogue kind; an answer that leaves
        ``kind`` unset gets that kind (text for a role the catalogue lacks), and one without
        ``sources`` says a plugin decided."""
        spec = self.roles().get(role)
        kind = spec.kind if spec else None
        answer: RoleProvider = self.pm.hook.resolve_role_provider(
            role=role, config=config, override=override, kind=kind, parameters=self.parameters()
        )
        if answer.kind is None:
            answer = replace(answer, kind=kind or "text")
        if not answer.sources:
            fields = ("provider", "model", "kind", *answer.params)
            answer = replace(answer, sources=dict.fromkeys(fields, PLUGIN_RESOLVER))
        return answer

    def parameters(self) -> tuple[str, ...]:
        """The generation parameters config.yml may set: the core's, then those providers
        declare (:attr:`~questfoundry.kit.Backend.parameters`)."""
        declared = [p for reg in self.backends("provider").values() for p in reg.parameters]
        return tuple(dict.fromkeys([*GENERATION_PARAMETERS, *declared]))

    # --------------------------------------------------------------------- listing

    def plugins(self) -> list[PluginInfo]:
        """Every plugin, enabled or disabled, with its distribution, version and contributions."""
        catalogue = self._build()
        infos = {name: PluginInfo(name, *source) for name, source in self._sources.items()}
        for kind, found in catalogue.backends.items():
            for reg in found.values():
                infos[reg.plugin].registers.setdefault(kind, []).append(reg.name)
                if reg.description:
                    infos[reg.plugin].descriptions[f"{kind} {reg.name}"] = reg.description
        for label, entries in (("role", catalogue.roles), ("loop", catalogue.loops)):
            for name, (_, plugin) in entries.items():
                infos[plugin].registers.setdefault(label, []).append(name)
        for name, (loop, plugin) in catalogue.loops.items():
            if loop.description:
                infos[plugin].descriptions[f"loop {name}"] = loop.description
        for hook_name, label in HOOK_LABELS.items():
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name in infos:
                    infos[impl.plugin_name].registers.setdefault("hook", []).append(label)
        listed = sorted(infos.values(), key=lambda i: (i.distribution != CORE_DISTRIBUTION, i.name))
        for failure in self.failures:
            provides: dict[str, list[str]] = {}
            for kind, name in failure.provides:
                provides.setdefault(kind, []).append(name)
            listed.append(
                PluginInfo(
                    failure.entry_point,
                    failure.distribution,
                    failure.version,
                    provides,
                    failure.error,
                )
            )
        return listed

    # --------------------------------------------------------------------- internals

    def _build(self) -> Catalogue:
        """Collect every contribution plugin by plugin, disabling each plugin that conflicts."""
        while self._catalogue is None:
            catalogue = Catalogue()
            if all(self._add(catalogue, name) for name in list(self._sources)):
                problem = catalogue.loop_over_unknown_roles()
                if problem is None:
                    self._catalogue = catalogue
                else:
                    self._disable(*problem)
        return self._catalogue

    def _add(self, catalogue: Catalogue, name: str) -> bool:
        """Add plugin ``name``'s offers to ``catalogue``; False when it had to be disabled."""
        offered: list[tuple[str, str]] = []
        try:
            found = offers(lambda hook: self._call(name, hook))
            offered = found.provides
            catalogue.add(name, self._sources[name][0], found)
        except (Refused, DuplicatePluginError) as problem:
            self._disable(name, str(problem), getattr(problem, "provides", ()) or offered)
            return False
        except Exception as exc:
            self._disable(name, f"a hook raised {_describe(exc)}", offered)
            return False
        return True

    def _provides(self, name: str) -> list[tuple[str, str]]:
        """What plugin ``name`` registers, as far as its hooks answer without failing."""
        found: list[tuple[str, str]] = []
        for kind, hook in BACKEND_HOOKS.items():
            try:
                entries = backends_offered(lambda hook: self._call(name, hook), hook)
            except Exception:
                continue
            found += [(kind, backend) for backend in entries]
        return found

    def _call(self, name: str, hook: str) -> Any:
        """Plugin ``name``'s answer to ``hook`` (None when it does not implement it), asked
        through pluggy with every other plugin left out, so its own wrappers apply."""
        others = [plugin for other, plugin in self.pm.list_name_plugin() if other != name]
        answers = self.pm.subset_hook_caller(hook, remove_plugins=others)()
        return answers[0] if answers else None

    def _known(self) -> list[str]:
        return [name for name in dir(hookspecs) if self.pm.parse_hookspec_opts(hookspecs, name)]

    def _fail(self, name: str, dist: str, version: str, reason: str, provides: Any = ()) -> None:
        self.failures.append(LoadFailure(name, dist, reason, version, tuple(provides)))
        warnings.warn(
            f"plugin {dist} ({name}) is disabled: {reason}; the rest of QuestFoundry works "
            f"without it (set {DISABLE_ENV}={dist} to stop loading it)",
            PluginLoadWarning,
            stacklevel=4,
        )

    def _disable(self, name: str, reason: str, provides: Iterable[tuple[str, str]] = ()) -> None:
        dist, version = self._sources.get(name, (name, ""))
        self.unregister(name)
        self._fail(name, dist, version, reason, provides)


def get_plugin_manager(
    *,
    builtins: bool = True,
    entry_points: bool = True,
    plugins: Iterable[tuple[str, object]] = (),
    env: Mapping[str, str] = os.environ,
) -> PluginManager:
    """A plugin manager: built-ins, then entry points, then the given ``(name, plugin)`` pairs.

    Whatever conflicts is disabled with one :class:`PluginLoadWarning` each (see the module).
    """
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


def _hints(unknown: Iterable[str], known: list[str]) -> str:
    return ", ".join(
        f"{hook!r} (did you mean {close[0]!r}?)" if close else repr(hook)
        for hook in unknown
        for close in [difflib.get_close_matches(hook, known, n=1)]
    )


def _describe(exc: BaseException) -> str:
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def _version_of(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return ""
