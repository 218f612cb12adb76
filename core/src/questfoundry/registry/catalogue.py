"""The catalogue: what every enabled plugin registers, gathered plugin by plugin and checked.

Each plugin's hooks are asked on their own (through pluggy, so its wrappers and ordering apply),
which is what lets a conflict name the two plugins involved. A plugin whose contribution breaks a
rule — a name another plugin took first (:class:`~questfoundry.kit.DuplicatePluginError`),
a hook answering the wrong shape, a loop over roles nobody contributes — is refused as a whole
(:class:`Refused`); the plugin manager then disables it and builds the catalogue again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from questfoundry.contracts.backends import Backend, Factory, Offer
from questfoundry.contracts.errors import DuplicatePluginError, PluginError
from questfoundry.contracts.studio import LoopSpec, RoleSpec

#: backend kind → the hook that registers it
BACKEND_HOOKS: dict[str, str] = {
    "cache backend": "cache_backends",
    "limiter strategy": "limiter_strategies",
    "budget keeper": "budget_keepers",
    "cost model": "cost_models",
    "state store": "state_stores",
    "provider": "providers",
}


@dataclass(frozen=True)
class Registration:
    """A backend name with what its plugin declared about it, and who registered it."""

    kind: str
    name: str
    factory: Factory
    plugin: str
    distribution: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    capabilities: frozenset[str] = frozenset()
    description: str = ""
    priority: int = 0
    parameters: Mapping[str, Any] = field(default_factory=dict)
    setup: Offer | None = None


class Refused(PluginError):
    """A plugin's contribution breaks a rule; ``provides`` is what it offered (for hints)."""

    def __init__(self, reason: str, provides: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__(reason)
        self.provides = tuple(provides)


@dataclass(frozen=True)
class Offers:
    """One plugin's answers to the registration hooks, checked for shape."""

    backends: Mapping[str, Mapping[str, Backend | Factory]]
    roles: tuple[RoleSpec, ...] = ()
    loops: tuple[LoopSpec, ...] = ()

    @property
    def provides(self) -> list[tuple[str, str]]:
        """``(kind, name)`` of every backend offered."""
        return [(kind, name) for kind, found in self.backends.items() for name in found]


def offers(call: Callable[[str], Any]) -> Offers:
    """What a plugin offers, from ``call(hook)``: its answer to ``hook`` (None: not implemented)."""
    backends = {kind: backends_offered(call, hook) for kind, hook in BACKEND_HOOKS.items()}
    return Offers(backends, tuple(call("roles") or ()), tuple(call("loops") or ()))


def backends_offered(call: Callable[[str], Any], hook: str) -> dict[str, Backend | Factory]:
    """A plugin's answer to the backend hook ``hook``: a mapping of names to registrations."""
    entries = call(hook) or {}
    if not isinstance(entries, Mapping):
        raise Refused(f"{hook}() returned {type(entries).__name__}, not a mapping")
    for name, value in entries.items():
        if not isinstance(value, Backend) and not callable(value):
            raise Refused(f"{hook}() registers {name!r} as {value!r}, not a factory")
    return dict(entries)


@dataclass
class Catalogue:
    """Everything the enabled plugins contribute: roles and loops with the plugin of each."""

    backends: dict[str, dict[str, Registration]] = field(default_factory=dict)
    roles: dict[str, tuple[RoleSpec, str]] = field(default_factory=dict)
    loops: dict[str, tuple[LoopSpec, str]] = field(default_factory=dict)
    #: plugin name → its distribution, for every plugin added
    distributions: dict[str, str] = field(default_factory=dict)

    def add(self, plugin: str, distribution: str, offered: Offers) -> None:
        """Take ``plugin``'s offers whole, or raise :class:`DuplicatePluginError` and take none."""
        self._check_new(plugin, distribution, offered)
        for kind, found in offered.backends.items():
            taken = self.backends.setdefault(kind, {})
            for name, value in found.items():
                taken[name] = registration(kind, name, value, plugin, distribution)
        self.distributions[plugin] = distribution
        self.roles.update((spec.name, (spec, plugin)) for spec in offered.roles)
        self.loops.update((loop.name, (loop, plugin)) for loop in offered.loops)

    def _check_new(self, plugin: str, distribution: str, offered: Offers) -> None:
        who = f"{plugin} ({distribution})"
        for kind, found in offered.backends.items():
            for name in found:
                first = self.backends.get(kind, {}).get(name)
                if first is not None:
                    raise DuplicatePluginError(
                        f"{kind} {name!r} is registered twice: by {first.plugin} "
                        f"({first.distribution}) and by {who}"
                    )
        for label, entries, new in (
            ("role", self.roles, [spec.name for spec in offered.roles]),
            ("loop", self.loops, [loop.name for loop in offered.loops]),
        ):
            for name in new:
                if name in entries:
                    owner = entries[name][1]
                    owner = f"{owner} ({self.distributions[owner]})"
                    raise DuplicatePluginError(
                        f"{label} {name!r} is contributed twice: by {owner} and by {who}"
                    )

    def loop_over_unknown_roles(self) -> tuple[str, str] | None:
        """``(plugin, reason)`` for the first loop naming a role nobody contributes, or None."""
        for loop, plugin in self.loops.values():
            unknown = [role for role in loop.roles if role not in self.roles]
            if unknown:
                return plugin, f"loop {loop.name!r} names unknown roles: {', '.join(unknown)}"
        return None


def registration(kind: str, name: str, value: Any, plugin: str, dist: str) -> Registration:
    """The :class:`Registration` of ``value`` (a :class:`Backend` or a bare factory)."""
    if isinstance(value, Backend):
        return Registration(
            kind,
            name,
            value.factory,
            plugin,
            dist,
            value.settings,
            frozenset(value.capabilities),
            value.description,
            value.priority,
            value.parameters,
            value.setup,
        )
    return Registration(kind, name, value, plugin, dist)
