"""The configuration's JSON Schema: the core's, composed with what the installed plugins declare.

``schemas/config.schema.json`` holds the core's keys and its built-in backends' settings (in
``$defs``). :func:`compose` adds every registered backend's settings fragment where the user writes
those keys: flat in ``caching``, ``rate_limiting`` or ``state`` when that backend is selected
(``if``/``then`` on ``backend``, with ``unevaluatedProperties: false`` so anything else is an
unknown key), in ``providers.<kind>.<name>`` for a provider, in ``pricing.providers.<name>`` for
the cost model that prices it. A section naming a backend nothing registers accepts any key: the
missing backend is the error to report, not its keys.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

from questfoundry.config.model import KeyPath

if TYPE_CHECKING:
    from questfoundry.registry import PluginManager, Registration

#: flat sections selecting one backend with their ``backend`` key
SECTIONS = {
    "caching": "cache backend",
    "rate_limiting": "limiter strategy",
    "state": "state store",
}
#: where each registered backend's fragment is kept in the composed schema
SETTINGS_DEFS = "backend_settings"


@cache
def _core() -> dict[str, Any]:
    from importlib import resources  # costs a few ms: only when a file is validated

    text = resources.files("questfoundry").joinpath("schemas/config.schema.json").read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def core_schema() -> dict[str, Any]:
    """The shipped schema: the core and its built-ins (a fresh copy)."""
    return copy.deepcopy(_core())


def default_backend(section: str, manager: PluginManager | None = None) -> str:
    """The backend ``section`` uses when it names none.

    The installed backend of its kind with the highest ``priority`` above 0 (the file cache, where
    questfoundry-cache-file is installed, so answers outlive the process), else the core schema's
    documented default.
    """
    if manager is not None:
        found = manager.backends(SECTIONS[section]).items()
        best = min(((-reg.priority, name) for name, reg in found), default=(0, ""))
        if best[0] < 0:  # ties go to the name that sorts first
            return best[1]
    default: str = _core()["properties"][section]["properties"]["backend"]["default"]
    return default


def compose(manager: PluginManager | None) -> dict[str, Any]:
    """The schema of config.yml for the plugins ``manager`` holds (the core's alone for None)."""
    schema = core_schema()
    if manager is None:
        return schema
    defs = schema["$defs"]
    fragments: dict[tuple[str, str], Any] = {}
    for kind in (*SECTIONS.values(), "provider", "cost model"):
        for name, reg in sorted(manager.backends(kind).items()):
            if reg.settings:
                fragments[(kind, name)] = _fragment_ref(defs, reg)
    for section, kind in SECTIONS.items():
        node = schema["properties"][section]
        names = sorted(manager.backends(kind))
        default = default_backend(section, manager)
        node["properties"]["backend"]["default"] = default
        node["allOf"] = _branches("backend", names, default, fragments, kind)
        node["unevaluatedProperties"] = False
    for kind in ("text", "image"):
        node = schema["properties"]["providers"]["properties"][kind]
        for name in sorted(manager.backends("provider")):
            parts = [{"$ref": "#/$defs/provider"}]
            if ("provider", name) in fragments:
                parts.append(fragments[("provider", name)])
            reg = manager.get("provider", name)
            node.setdefault("properties", {})[name] = {
                "description": f"Settings of the provider {name!r} ({reg.distribution}).",
                "allOf": parts,
                "unevaluatedProperties": False,
            }
    for parameter, spec in generation_parameters(manager).items():
        for where in (defs["role"], defs["provider"]):
            where["properties"].setdefault(parameter, copy.deepcopy(spec))
    pricing = schema["properties"]["pricing"]["properties"]["providers"]
    models = sorted(manager.backends("cost model"))
    pricing["additionalProperties"] = _priced(models, None, fragments)
    for name in models:
        if ("cost model", name) in fragments:
            pricing.setdefault("properties", {})[name] = _priced(models, name, fragments)
    return schema


def generation_parameters(manager: PluginManager) -> dict[str, Any]:
    """The generation parameters installed providers declare beyond the core's, with their
    schemas (the first provider to declare a name defines it)."""
    declared: dict[str, Any] = {}
    for _, reg in sorted(manager.backends("provider").items()):
        for parameter, spec in reg.parameters.items():
            declared.setdefault(parameter, spec)
    return declared


def _fragment_ref(defs: dict[str, Any], reg: Registration) -> Any:
    """A ``$ref`` to the backend's fragment, kept under ``$defs`` (built-ins point at their own)."""
    settings = dict(reg.settings)
    if set(settings) == {"$ref"}:
        return settings
    slot = defs.setdefault(SETTINGS_DEFS, {}).setdefault(reg.kind.replace(" ", "_"), {})
    slot[reg.name] = {
        "title": f"{reg.kind} {reg.name!r} ({reg.distribution})",
        "description": reg.description,
        **copy.deepcopy(settings),
    }
    return {"$ref": f"#/$defs/{SETTINGS_DEFS}/{reg.kind.replace(' ', '_')}/{reg.name}"}


def _branches(
    selector: str,
    names: list[str],
    default: str | None,
    fragments: Mapping[tuple[str, str], Any],
    kind: str,
) -> list[dict[str, Any]]:
    """One ``if selector == name then its fragment`` per backend with settings, and one that
    accepts anything when the selected backend is not registered."""
    branches: list[dict[str, Any]] = []
    for name in names:
        if (kind, name) in fragments:
            chosen = {"properties": {selector: {"const": name}}, "required": [selector]}
            condition = (
                {"anyOf": [chosen, {"not": {"required": [selector]}}]}
                if name == default
                else chosen
            )
            branches.append({"if": condition, "then": fragments[(kind, name)]})
    unknown = {"properties": {selector: {"not": {"enum": names}}}, "required": [selector]}
    branches.append({"if": unknown, "then": {"additionalProperties": True}})
    return branches


def _priced(
    models: list[str], named: str | None, fragments: Mapping[tuple[str, str], Any]
) -> dict[str, Any]:
    """``pricing.providers.<provider>``: the core's keys and the selected cost model's."""
    return {
        "$ref": "#/$defs/pricing_provider",
        "allOf": _branches("cost_model", models, named, fragments, "cost model"),
        "unevaluatedProperties": False,
    }


# ----------------------------------------------------------------------------- walking


def subschemas(schema: Mapping[str, Any], path: KeyPath) -> list[Mapping[str, Any]]:
    """Every schema that may govern the value at ``path`` (a backend's branch included)."""
    nodes = [deref(schema, schema)]
    for part in path:
        following: list[Mapping[str, Any]] = []
        for node in nodes:
            following.extend(_children(schema, node, part))
        if not following:
            return []
        nodes = following
    return nodes


def _children(
    schema: Mapping[str, Any], node: Mapping[str, Any], part: str | int
) -> Iterator[Mapping[str, Any]]:
    for member in _members(schema, node):
        nxt: Any
        if isinstance(part, int):
            nxt = member.get("items")
        elif part in member.get("properties", {}):
            nxt = member["properties"][part]
        else:
            nxt = None
            for pattern, sub in member.get("patternProperties", {}).items():
                if re.search(pattern, part):
                    nxt = sub
                    break
            if nxt is None and member is node:
                nxt = member.get("additionalProperties")
        if isinstance(nxt, Mapping):
            yield deref(schema, nxt)


def _members(schema: Mapping[str, Any], node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """``node`` and the schemas it combines with ``allOf`` and ``then``."""
    yield node
    for raw in node.get("allOf", ()):
        part = deref(schema, raw)
        yield from _members(schema, part)
        then = part.get("then")
        if isinstance(then, Mapping):
            yield from _members(schema, deref(schema, then))


def deref(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    """``node`` with a local ``$ref`` replaced by its target (siblings kept)."""
    while isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        target: Any = root
        for piece in node["$ref"][2:].split("/"):
            target = target[piece]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def accepts_string(schema: Mapping[str, Any], path: KeyPath) -> bool:
    """Whether the schema takes text at ``path`` (unknown places do)."""
    nodes = [n for n in subschemas(schema, path) if "type" in n or "enum" in n]
    if not nodes:
        return True
    node = nodes[0]
    if "type" in node:
        types = node["type"]
        return "string" in ([types] if isinstance(types, str) else types)
    return any(isinstance(choice, str) for choice in node["enum"])


def known_keys(schema: Mapping[str, Any], path: KeyPath) -> list[str]:
    """The fixed keys the schema names at ``path``, in order, without duplicates."""
    keys: dict[str, None] = {}
    for node in subschemas(schema, path):
        for member in _members(schema, node):
            keys.update(dict.fromkeys(member.get("properties", {})))
    return list(keys)
