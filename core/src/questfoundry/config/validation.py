"""Checking a config against the composed schema, in messages a user can act on.

Every problem is reported, each as ``dotted.path: message``, in one
:class:`~questfoundry.contracts.errors.ConfigError` whose ``path`` is the first one's. A key no
installed backend takes, but a repository plugin's backend would, names that backend and the
distribution to install. Secrets never appear in a message.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any, TypeGuard

from questfoundry.config import schema as schemas
from questfoundry.config.model import (
    Config,
    KeyPath,
    Unresolved,
    dotted,
    redact_url,
    secret_key,
)
from questfoundry.contracts.errors import ConfigError, PluginNotFoundError

if TYPE_CHECKING:
    from questfoundry.registry import PluginManager

Problem = tuple[KeyPath, str]

_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}
_BOUNDS = {
    "minimum": "is less than the minimum of",
    "maximum": "is greater than the maximum of",
    "exclusiveMinimum": "must be greater than",
    "exclusiveMaximum": "must be less than",
}


class Validation:
    """One composed schema and the plugins it came from; finds every problem of a config."""

    def __init__(self, manager: PluginManager | None) -> None:
        self.manager = manager
        self.schema = schemas.compose(manager)
        self._validator = _validator_for(self.schema)

    def accepts_string(self, path: KeyPath) -> bool:
        return schemas.accepts_string(self.schema, path)

    def problems(self, data: Mapping[str, Any], secrets: frozenset[str]) -> list[Problem]:
        found: list[Problem] = []
        for error in self._validator.iter_errors(data):
            found.extend(self._explain(error, secrets))
        found.extend(self._semantic(data))
        return _without_echoes(found)

    def check(self, data: Mapping[str, Any], source: str | None, secrets: Iterable[str]) -> None:
        problems = self.problems(data, frozenset(secrets))
        if problems:
            raise error(problems, source)

    # ------------------------------------------------------------------ messages

    def _explain(self, err: Any, secrets: frozenset[str]) -> list[Problem]:
        path: KeyPath = tuple(err.absolute_path)
        keyword = err.validator
        if (
            keyword in ("additionalProperties", "unevaluatedProperties")
            and err.validator_value is False
        ):
            allowed = self._allowed(err.schema, err.instance)
            extra = sorted(k for k in err.instance if k not in allowed)
            return [
                ((*path, key), self._unknown_key(path, key, allowed, err.instance)) for key in extra
            ]
        if "propertyNames" in err.schema_path:
            return [((*path, str(err.instance)), self._bad_name(err.instance, path))]
        hidden = dotted(path) in secrets or self._secret_field(path)
        return [(path, _keyword_message(err, hidden) + self._misspelt_name_hint(path))]

    def _allowed(self, node: Mapping[str, Any], instance: Mapping[str, Any]) -> set[str]:
        """The keys ``node`` evaluates for ``instance``: its own, and its selected branches'."""
        node = schemas.deref(self.schema, node)
        allowed = set(node.get("properties", {}))
        if node.get("additionalProperties") is True:
            allowed |= set(instance)
        patterns = node.get("patternProperties", {})
        allowed |= {k for k in instance if any(re.search(p, str(k)) for p in patterns)}
        for raw in node.get("allOf", ()):
            part = schemas.deref(self.schema, raw)
            if "if" in part:
                if self._validator.evolve(schema=part["if"]).is_valid(instance):
                    allowed |= self._allowed(part.get("then", {}), instance)
            else:
                allowed |= self._allowed(part, instance)
        return allowed

    def _unknown_key(
        self, path: KeyPath, key: str, allowed: set[str], instance: Mapping[str, Any]
    ) -> str:
        owner = self._owner(path, key, instance)
        if owner:
            return owner
        known = [k for k in schemas.known_keys(self.schema, path) if k in allowed]
        suggestion = suggest(key, known)
        if suggestion or not known:
            return "unknown key" + suggestion
        return f"unknown key (expected one of: {', '.join(known)})"

    def _owner(self, path: KeyPath, key: str, instance: Mapping[str, Any]) -> str:
        """For a backend's section: which other backend takes ``key``, and how to get it."""
        if len(path) != 1 or path[0] not in schemas.SECTIONS or self.manager is None:
            return ""
        section = str(path[0])
        kind = schemas.SECTIONS[section]
        selected = instance.get("backend", schemas.default_backend(section, self.manager))
        here = f"unknown key for {kind} {selected!r}"
        for name, reg in sorted(self.manager.backends(kind).items()):
            fragment = schemas.deref(self.schema, dict(reg.settings)) if reg.settings else {}
            if key in fragment.get("properties", {}):
                return f"{here}; {key!r} is a setting of {kind} {name!r} (backend: {name})"
        from questfoundry.registry import known_plugins

        for distribution, kinds in sorted(known_plugins().items()):
            for name, keys in sorted(kinds.get(kind, {}).items()):
                if key in keys:
                    failed = self.manager.failure_providing(kind, name)
                    if failed is not None:
                        return (
                            f"{here}; {key!r} is a setting of {kind} {name!r}, whose plugin "
                            f"{failed.distribution} is installed but disabled: {failed.error}"
                        )
                    return (
                        f"{here}; {key!r} is a setting of {kind} {name!r}, which is not "
                        f"installed: pip install {distribution}"
                    )
        return ""

    def _bad_name(self, name: Any, parent: KeyPath) -> str:
        nodes = schemas.subschemas(self.schema, parent)
        what = next((n["propertyNames"].get("title") for n in nodes if "propertyNames" in n), None)
        return (
            f"{literal(name)} is not a valid {what or 'key'} name: use lowercase letters, "
            "digits, '_' and '-', starting with a letter"
        )

    def _misspelt_name_hint(self, path: KeyPath) -> str:
        """``providers.text.defualt`` reads as a provider named ``defualt``: say ``default``."""
        if not path or not isinstance(path[-1], str):
            return ""
        known = schemas.known_keys(self.schema, path[:-1])
        if not known or path[-1] in known:
            return ""
        return suggest(path[-1], known)

    def _secret_field(self, path: KeyPath) -> bool:
        """A key named like a secret whose schema takes text (a ``cost_per_input_token`` is not)."""
        return bool(path) and secret_key(path[-1]) and self.accepts_string(path)

    # ------------------------------------------------------------------ beyond the schema

    def _semantic(self, data: Mapping[str, Any]) -> Iterator[Problem]:
        """What the schema cannot say: a real time zone, delays in order, roles that exist."""
        limiting = data.get("rate_limiting")
        if isinstance(limiting, Mapping):
            zone = limiting.get("timezone")
            if isinstance(zone, str) and zone:
                problem = _timezone_problem(zone)
                if problem:
                    yield ("rate_limiting", "timezone"), problem
        retry = data.get("retry")
        if isinstance(retry, Mapping):
            low, high = retry.get("initial_delay_ms"), retry.get("max_delay_ms")
            if _is_number(low) and _is_number(high) and low > high:
                yield (
                    ("retry", "initial_delay_ms"),
                    f"{literal(low)} is greater than retry.max_delay_ms ({literal(high)})",
                )
        roles = data.get("roles")
        if isinstance(roles, Mapping) and self.manager is not None:
            catalogue = self.manager.roles()
            for role in roles:
                if isinstance(role, str) and role not in catalogue:
                    yield (
                        ("roles", role),
                        "unknown role"
                        + (
                            suggest(role, list(catalogue))
                            or f" (roles: {', '.join(sorted(catalogue))})"
                        ),
                    )


@lru_cache(maxsize=8)
def _cached_validator(text: str) -> Any:
    import json

    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(text))


def _validator_for(schema: Mapping[str, Any]) -> Any:
    import json

    return _cached_validator(json.dumps(schema, sort_keys=True))


def _without_echoes(problems: list[Problem]) -> list[Problem]:
    """Drop "unknown key" for a key that has its own, more precise, problem below it."""
    paths = [path for path, _ in problems]
    return [
        (path, message)
        for path, message in problems
        if not (
            message.startswith("unknown key")
            and any(len(other) > len(path) and other[: len(path)] == path for other in paths)
        )
    ]


def _keyword_message(err: Any, hidden: bool) -> str:
    value, limit, keyword = err.instance, err.validator_value, err.validator
    shown = "the value" if hidden else literal(value)
    if keyword == "type":
        types = [limit] if isinstance(limit, str) else list(limit)
        got = kind_of(value) if hidden else describe(value)
        return f"expected {' or '.join(_TYPE_WORDS.get(t, t) for t in types)}, got {got}"
    if keyword in _BOUNDS:
        return f"{shown} {_BOUNDS[keyword]} {literal(limit)}"
    if keyword == "enum":
        choices = ", ".join(literal(choice) for choice in limit)
        return f"{shown} is not one of {choices}" + suggest(value, limit)
    if keyword == "minLength" and limit == 1:
        return "must not be empty"
    if keyword == "pattern":
        examples = err.schema.get("examples") or []
        form = f"; expected something like {examples[0]!r}" if examples else f" ({limit})"
        return f"{shown} does not have the expected form{form}"
    return "the value is not valid here" if hidden else one_line(err.message)


def _timezone_problem(zone: str) -> str | None:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        known = zoneinfo.available_timezones()
        if not known:
            return None  # no time zone database here: nothing to check against
        return f"unknown time zone {zone!r}" + suggest(zone, known)
    return None


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ----------------------------------------------------------------------------- backends


_PER_PROVIDER_MAPS = (
    ("caching", "per_provider"),
    ("rate_limiting", "providers"),
    ("pricing", "providers"),
)


def check_backends(config: Config, manager: PluginManager) -> None:
    """Raise :class:`ConfigError` for each backend the config names that nothing registers.

    Each unknown name is reported once, at the first path that uses it, with what is installed
    (or which disabled plugin provides it, or which distribution to install).
    """
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for path, kind, name in _backend_references(config.data):
        if (kind, name) in seen:
            continue
        seen.add((kind, name))
        try:
            manager.get(kind, name)
        except PluginNotFoundError as err:
            problems.append((path, str(err)))
    if problems:
        from questfoundry.config.overrides import SET, blamed

        ours = blamed([path for path, _ in problems], config.overridden)
        raise error(problems, SET if ours else config.source)


def _backend_references(data: Mapping[str, Any]) -> Iterator[tuple[KeyPath, str, str]]:
    """Every ``(path, kind, name)`` the config names explicitly, in a fixed order."""
    for section, kind in schemas.SECTIONS.items():
        name = _mapping(data.get(section)).get("backend")
        if isinstance(name, str):
            yield (section, "backend"), kind, name
    providers = _mapping(data.get("providers"))
    for kind in ("text", "image"):
        for name, value in _mapping(providers.get(kind)).items():
            if name != "default":
                yield ("providers", kind, name), "provider", name
            elif isinstance(value, str):
                yield ("providers", kind, "default"), "provider", value
    for role, settings in _mapping(data.get("roles")).items():
        provider = _mapping(settings).get("provider")
        if isinstance(provider, str):
            yield ("roles", role, "provider"), "provider", provider
    for section, key in _PER_PROVIDER_MAPS:
        for name in _mapping(_mapping(data.get(section)).get(key)):
            yield (section, key, name), "provider", name
    for name, settings in _mapping(_mapping(data.get("pricing")).get("providers")).items():
        model = _mapping(settings).get("cost_model")
        if isinstance(model, str):
            yield ("pricing", "providers", name, "cost_model"), "cost model", model


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) and not isinstance(value, Unresolved) else {}


# ----------------------------------------------------------------------------- wording


def error(problems: Iterable[Problem], source: str | None) -> ConfigError:
    """One :class:`ConfigError` for all problems: sorted by path, joined by ``; `` on one line."""
    ordered = sorted(set(problems), key=lambda problem: _sort_key(problem[0]))
    (first_path, first_message), rest = ordered[0], ordered[1:]
    parts = [first_message, *(f"{dotted(p)}: {m}" if p else m for p, m in rest)]
    return ConfigError(one_line("; ".join(parts)), path=dotted(first_path), source=source)


def _sort_key(path: KeyPath) -> tuple[tuple[int, str], ...]:
    return tuple((0, f"{p:09d}") if isinstance(p, int) else (1, p) for p in path)


def suggest(word: Any, choices: Iterable[Any]) -> str:
    if not isinstance(word, str):
        return ""
    options = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(word.lower(), options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def one_line(text: str) -> str:
    return " ".join(text.split())


def literal(value: Any) -> str:
    """A short YAML-ish rendering of a value for a message, URL passwords hidden."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = redact_url(value)
        return repr(text if len(text) <= 60 else text[:57] + "...")
    if isinstance(value, (int, float)):
        return repr(value)
    return describe(value)


def describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {literal(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {literal(value)}"
    if value is None or isinstance(value, bool):
        return literal(value)
    return kind_of(value)


def kind_of(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    for name, types in (("boolean", bool), ("string", str), ("integer", int), ("number", float)):
        if isinstance(value, types):
            return _TYPE_WORDS[name] if name != "boolean" else "a boolean"
    name = type(value).__name__
    return f"an {name}" if name[:1] in "aeiou" else f"a {name}"
