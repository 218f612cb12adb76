"""The configuration in effect: the file's values with every default filled in, and their sources.

Each value is labelled with where it came from: ``config.yml``, ``${VAR}`` (an environment
variable), ``built-in default`` (the core schema's) or ``<distribution> default`` (a backend's
fragment) or ``--set`` (a runtime override). Each role of the catalogue is shown as it resolves,
with the layers ``resolve_role_provider`` reports (``--set`` where an override gave the value).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from questfoundry.config import schema as schemas
from questfoundry.config.model import Config, KeyPath, Unresolved, dotted
from questfoundry.config.overrides import SET, overridden
from questfoundry.contracts.errors import ConfigError
from questfoundry.contracts.studio import RoleProvider

if TYPE_CHECKING:
    from questfoundry.registry import PluginManager

FILE = "config.yml"
BUILT_IN = "built-in default"


def effective(config: Config, manager: PluginManager) -> tuple[dict[str, Any], dict[str, str]]:
    """``(values, sources)``: the configuration in effect, and per dotted path its source."""
    from jsonschema import Draft202012Validator

    schema = schemas.compose(manager)
    validator = Draft202012Validator(schema)
    sources: dict[str, str] = {}
    values = _fill(schema, validator, schema, dict(config.data), (), sources)
    _label_variables(config, sources)
    for path in sources:
        if overridden(path, config.overridden):
            sources[path] = SET
    roles: dict[str, Any] = dict(values.get("roles", {}))
    for role, routed in resolved_roles(config, manager).items():
        if isinstance(routed, ConfigError):
            continue  # no provider configured for it: nothing is in effect
        entry = {"provider": routed.provider, "model": routed.model, "kind": routed.kind}
        entry.update(routed.params)
        roles[role] = entry
        for key in entry:
            sources[f"roles.{role}.{key}"] = routed.sources.get(key, BUILT_IN)
    if roles:
        values["roles"] = roles
    return values, sources


def resolved_roles(config: Config, manager: PluginManager) -> dict[str, RoleProvider | ConfigError]:
    """Each role of the catalogue as it resolves (or the reason it cannot), see :func:`labelled`."""
    found: dict[str, RoleProvider | ConfigError] = {}
    for role in manager.roles():
        try:
            found[role] = labelled(manager.resolve_role(role, config.data), config)
        except ConfigError as exc:
            found[role] = exc
    return found


def labelled(routed: RoleProvider, config: Config) -> RoleProvider:
    """``routed`` with the source of each value a ``--set`` override gave as ``--set <key>``."""
    labels = {}
    for name, layer in routed.sources.items():
        key = config_key(name, layer)
        labels[name] = f"{SET} {key}" if key and overridden(key, config.overridden) else layer
    return replace(routed, sources=labels)


def config_key(name: str, layer: str) -> str | None:
    """The dotted key of config.yml that gave field ``name`` its value, labelled ``layer``.

    ``("model", "roles.gatekeeper")`` → ``roles.gatekeeper.model``; ``("provider",
    "providers.text.default")`` → that key; None for a layer that is not in config.yml.
    """
    if layer.startswith("providers.") and layer.endswith(".default"):
        return layer
    if layer.startswith(("roles.", "providers.")):
        return f"{layer}.{name}"
    return None


def _fill(
    schema: Mapping[str, Any],
    validator: Any,
    node: Mapping[str, Any],
    value: dict[str, Any],
    path: KeyPath,
    sources: dict[str, str],
) -> dict[str, Any]:
    """``value`` with the defaults of ``node`` (and of its selected branches) filled in."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        here = (*path, key)
        if isinstance(item, Mapping):
            subs = schemas.subschemas(schema, here)
            out[key] = _fill(schema, validator, subs[0] if subs else {}, dict(item), here, sources)
        else:
            out[key] = item
            sources[dotted(here)] = FILE
    for member in _selected(schema, validator, node, value):
        for key, raw in member.get("properties", {}).items():
            sub = schemas.deref(schema, raw)
            here = (*path, key)
            if key in out:
                continue
            if "default" in sub:
                out[key] = sub["default"]
                sources[dotted(here)] = _origin(member)
            elif sub.get("type") == "object" and sub.get("properties") and not path[1:]:
                nested = _fill(schema, validator, sub, {}, here, sources)
                if nested:
                    out[key] = nested
    return out


def _selected(
    schema: Mapping[str, Any], validator: Any, node: Mapping[str, Any], value: Mapping[str, Any]
) -> list[Mapping[str, Any]]:
    """``node`` and the ``allOf`` members and ``then`` branches that apply to ``value``."""
    node = schemas.deref(schema, node)
    found = [node]
    for raw in node.get("allOf", ()):
        part = schemas.deref(schema, raw)
        if "if" not in part:
            found.extend(_selected(schema, validator, part, value))
        elif validator.evolve(schema=part["if"]).is_valid(value) and "then" in part:
            found.extend(_selected(schema, validator, part["then"], value))
    return found


def _origin(member: Mapping[str, Any]) -> str:
    title = str(member.get("title", ""))
    if "(" in title and "built in" not in title:
        return f"{title.rsplit('(', 1)[1].rstrip(')')} default"
    return BUILT_IN


def _label_variables(config: Config, sources: dict[str, str]) -> None:
    """Values filled from the environment are labelled with their variables."""
    for path, names in config.variables.items():
        if path in sources:
            value: Any = config.data
            for part in path.split("."):
                value = value.get(part) if isinstance(value, Mapping) else None
            unset = " (not set)" if isinstance(value, Unresolved) else ""
            sources[path] = ", ".join(f"${{{name}}}" for name in names) + unset
