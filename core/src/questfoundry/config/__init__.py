"""Reading ``.questfoundry/config.yml``: find it, fill in environment variables, validate it.

Where the file comes from, first match wins:

1. the path given to :func:`load_config` (the CLI's ``--config``), which must exist;
2. ``QUESTFOUNDRY_CONFIG``, which must name an existing file;
3. ``.questfoundry/config.yml`` (or ``config.yaml``) in the working directory or any parent.

No file at all is fine: the configuration is then empty and every default applies.

Strings may use ``${VAR}`` and ``${VAR:-default}`` (the default also replaces an empty value);
``$${`` writes a literal ``${``. A variable that is not set and has no default is an error naming
the variable and the config path that used it. When a whole value is exactly one ``${VAR}`` and
the schema does not accept a string there, the text is read as a YAML scalar, so
``max_retries: ${RETRIES}`` gives an integer; where a string is accepted (API keys, names, URLs)
the text is kept as it is.

The result is validated against ``schemas/config.schema.json`` (JSON Schema 2020-12, shipped in
the package). Every problem is reported, each as ``dotted.path: message``, in one
:class:`~questfoundry.errors.ConfigError` whose ``path`` is the first one's.

Secrets never leave :meth:`Config.redacted`: values of keys named like ``api_key``, ``password``,
``token``, ``secret`` (or ending in ``_key``, ``_token``, ``_secret``, ``_password``), values
filled from environment variables named like a secret (``*KEY*``, ``*TOKEN*``, ``*SECRET*``,
``*PASS*``, ``*CREDENTIAL*``), and passwords inside URLs. Error messages do not show them either.

``yaml`` and ``jsonschema`` are imported only when a file is read or validated, so importing
QuestFoundry stays cheap.
"""

from __future__ import annotations

import copy
import difflib
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeGuard

from questfoundry.errors import ConfigError, PluginNotFoundError

if TYPE_CHECKING:
    from questfoundry.plugins import PluginManager

CONFIG_ENV = "QUESTFOUNDRY_CONFIG"
PROJECT_DIR_NAME = ".questfoundry"
CONFIG_NAMES = ("config.yml", "config.yaml")
REDACTED = "***"

_SECRET_KEYS = frozenset({"api_key", "password", "token", "secret"})
_SECRET_KEY_SUFFIXES = ("_key", "_token", "_secret", "_password")
_SECRET_VAR_WORDS = ("KEY", "TOKEN", "SECRET", "PASS", "CREDENTIAL")

# `$${` escapes; `${NAME}` / `${NAME:-default}` substitute; any other `${...` is malformed.
_REFERENCE = re.compile(
    r"\$\$\{"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<fallback>:-(?P<default>[^}]*))?\}"
    r"|\$\{[^}]*\}?"
)
_HOW = "write ${NAME} or ${NAME:-default}"
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<password>[^@/\s]+)@")

_TYPE_WORDS = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "true or false",
    "null": "null",
}

KeyPath = tuple[str | int, ...]
Problem = tuple[KeyPath, str]


# ----------------------------------------------------------------------------- public API


@dataclass(frozen=True)
class Config:
    """A loaded configuration: the interpolated, validated data, and where it came from.

    ``data`` holds only what the file says; defaults (documented in the schema) are applied by
    whoever reads a key, so ``redacted()`` shows the user's own file back to them.
    """

    data: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None
    project_dir: Path = field(default_factory=lambda: Path.cwd() / PROJECT_DIR_NAME)
    secret_paths: frozenset[str] = frozenset()

    def section(self, name: str) -> dict[str, Any]:
        """A copy of the top-level section ``name``; ``{}`` when the file has none."""
        value = self.data.get(name)
        return copy.deepcopy(dict(value)) if isinstance(value, Mapping) else {}

    def get(self, dotted: str, default: Any = None) -> Any:
        """The value at ``dotted`` (e.g. ``"caching.per_provider.openai.ttl_seconds"``)."""
        node: Any = self.data
        for part in dotted.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return default
        return node

    @property
    def namespace(self) -> str:
        """What prefixes shared keys: ``project.name``, else the project root folder's name."""
        name = self.get("project.name")
        if isinstance(name, str) and name:
            return name
        return self.project_dir.absolute().parent.name or "default"

    def redacted(self) -> dict[str, Any]:
        """A deep copy safe to print: secrets become ``***``, URL passwords too."""
        secrets = self.secret_paths | _named_secrets(self.data)
        result = _redact(self.data, (), secrets)
        return result if isinstance(result, dict) else {}


def find_config(start: Path | None = None, env: Mapping[str, str] = os.environ) -> Path | None:
    """The config file to use: ``QUESTFOUNDRY_CONFIG``, else the nearest project's, else None."""
    explicit = env.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit).expanduser().absolute()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV} names {path}, which is not a file")
        return path
    here = (start or Path.cwd()).absolute()
    for folder in (here, *here.parents):
        for name in CONFIG_NAMES:
            candidate = folder / PROJECT_DIR_NAME / name
            if candidate.is_file():
                return candidate
    return None


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    start: Path | None = None,
) -> Config:
    """Find, read, interpolate and validate the configuration; see the module docstring."""
    file = _existing(path) if path is not None else find_config(start, env)
    if file is None:
        return Config({}, None, (start or Path.cwd()).absolute() / PROJECT_DIR_NAME)
    source = str(file)
    raw = _parse_yaml(_read(file), source)
    interpolator = _Interpolator(env, _schema())
    data = interpolator.walk(raw, ())
    if interpolator.problems:
        raise _error(interpolator.problems, source)
    secrets = interpolator.secrets | _named_secrets(data)
    _validate(data, source, secrets)
    return Config(data, file, file.parent, frozenset(secrets))


def validate(data: Mapping[str, Any], source: str | None = None) -> None:
    """Raise :class:`ConfigError` listing every way ``data`` breaks the schema.

    ``source`` (a file name) is added to the message.
    """
    _validate(data, source, _named_secrets(data))


def load_schema() -> dict[str, Any]:
    """The configuration's JSON Schema, as shipped in the package (a fresh copy each call)."""
    return copy.deepcopy(_schema())


def check_backends(config: Config, manager: PluginManager) -> None:
    """Raise :class:`ConfigError` for each backend the config names that nothing registers.

    Each unknown name is reported once, at the first path that uses it, with what is installed.
    """
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for path, kind, name in _backend_references(config):
        if (kind, name) in seen:
            continue
        seen.add((kind, name))
        try:
            manager.get(kind, name)
        except PluginNotFoundError as err:
            problems.append((path, str(err)))
    if problems:
        raise _error(problems, str(config.path) if config.path else None)


# ----------------------------------------------------------------------------- reading


def _existing(path: str | Path) -> Path:
    file = Path(path).expanduser().absolute()
    if not file.exists():
        raise ConfigError(f"config file {file} does not exist")
    if not file.is_file():
        raise ConfigError(f"config file {file} is not a file")
    return file


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc}", source=str(file)) from None


def _parse_yaml(text: str, source: str) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.load(text, Loader=_loader())  # a SafeLoader: builds plain data only
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_message(exc), source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {_one_line(str(exc))}", source=source) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"the top level must be a mapping of sections, got {_describe(data)}", source=source
        )
    return data


def _yaml_message(exc: Any) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = exc.problem or exc.context or "unreadable"
    return f"invalid YAML{where}: {_one_line(problem)}"


@cache
def _loader() -> type[Any]:
    """A SafeLoader that refuses duplicate keys, which plain YAML would silently overwrite."""
    import yaml

    class Loader(yaml.SafeLoader):
        def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    try:
                        duplicate = key in seen
                        seen.add(key)
                    except TypeError:
                        continue  # unhashable: the base class reports it
                    if duplicate:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {key!r}", key_node.start_mark
                        )
            return super().construct_mapping(node, deep=deep)

    return Loader


# ----------------------------------------------------------------------------- interpolation


class _Interpolator:
    """Fills ``${VAR}`` references in every string of a YAML tree, collecting problems."""

    def __init__(self, env: Mapping[str, str], schema: Mapping[str, Any]) -> None:
        self.env = env
        self.schema = schema
        self.problems: list[Problem] = []
        self.secrets: set[str] = set()

    def walk(self, value: Any, path: KeyPath) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for key, item in value.items():
                if not isinstance(key, str):
                    self.problems.append(
                        ((*path, str(key)), f"key {key!r} is not a string; quote it")
                    )
                    continue
                out[key] = self.walk(item, (*path, key))
            return out
        if isinstance(value, list):
            return [self.walk(item, (*path, index)) for index, item in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            return self.substitute(value, path)
        return value

    def substitute(self, text: str, path: KeyPath) -> Any:
        names: list[str] = []
        before = len(self.problems)

        def replace(match: re.Match[str]) -> str:
            name = match.group("name")
            if match.group(0) == "$${":
                return "${"
            if name is None or "${" in (match.group("default") or ""):
                reference = match.group(0)
                self.problems.append((path, f"malformed variable reference {reference!r}: {_HOW}"))
                return reference
            names.append(name)
            value = self.env.get(name)
            if match.group("fallback") is not None and not value:
                return match.group("default")
            if value is None:
                self.problems.append((path, f"environment variable {name} is not set"))
                return ""
            return value

        result = _REFERENCE.sub(replace, text)
        if any(_secret_variable(name) for name in names):
            self.secrets.add(_dotted(path))
        whole = _REFERENCE.fullmatch(text)
        if whole and whole.group("name") and len(self.problems) == before:
            return self.coerce(result, path)
        return result

    def coerce(self, text: str, path: KeyPath) -> Any:
        """``text`` as a number or boolean where the schema wants one and not a string."""
        if _accepts_string(self.schema, path):
            return text
        import yaml

        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            return text
        return value if isinstance(value, (bool, int, float)) else text


def _secret_variable(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in _SECRET_VAR_WORDS)


# ----------------------------------------------------------------------------- validation


@cache
def _schema() -> dict[str, Any]:
    from importlib import resources  # costs a few ms: only when a file is validated

    text = (
        resources.files("questfoundry")
        .joinpath("schemas")
        .joinpath("config.schema.json")
        .read_text(encoding="utf-8")
    )
    schema: dict[str, Any] = json.loads(text)
    return schema


@cache
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_schema())


def _validate(data: Mapping[str, Any], source: str | None, secrets: Iterable[str]) -> None:
    hidden = frozenset(secrets)
    problems: list[Problem] = []
    for error in _validator().iter_errors(data):
        problems.extend(_explain(error, hidden))
    problems.extend(_semantic_problems(data))
    if problems:
        raise _error(problems, source)


def _explain(error: Any, secrets: frozenset[str]) -> list[Problem]:
    """One jsonschema error as ``(path, message)`` pairs a user can act on."""
    path: KeyPath = tuple(error.absolute_path)
    keyword = error.validator
    if keyword == "additionalProperties" and error.validator_value is False:
        return [((*path, key), _unknown_key(key, error.schema)) for key in _extra_keys(error)]
    if "propertyNames" in error.schema_path:
        return [((*path, str(error.instance)), _bad_name(error.instance, path))]
    hidden = _dotted(path) in secrets or _secret_field(path)
    return [(path, _keyword_message(error, hidden) + _misspelt_name_hint(path))]


def _keyword_message(error: Any, hidden: bool) -> str:
    value, limit, keyword = error.instance, error.validator_value, error.validator
    shown = "the value" if hidden else _literal(value)
    if keyword == "type":
        types = [limit] if isinstance(limit, str) else list(limit)
        got = _kind(value) if hidden else _describe(value)
        return f"expected {' or '.join(_TYPE_WORDS.get(t, t) for t in types)}, got {got}"
    if keyword in _BOUNDS:
        return f"{shown} {_BOUNDS[keyword]} {_literal(limit)}"
    if keyword == "enum":
        choices = ", ".join(_literal(choice) for choice in limit)
        return f"{shown} is not one of {choices}" + _suggest(value, limit)
    if keyword == "minLength" and limit == 1:
        return "must not be empty"
    if keyword == "pattern":
        examples = error.schema.get("examples") or []
        form = f"; expected something like {examples[0]!r}" if examples else f" ({limit})"
        return f"{shown} does not have the expected form{form}"
    return "the value is not valid here" if hidden else _one_line(error.message)


_BOUNDS = {
    "minimum": "is less than the minimum of",
    "maximum": "is greater than the maximum of",
    "exclusiveMinimum": "must be greater than",
    "exclusiveMaximum": "must be less than",
}


def _extra_keys(error: Any) -> list[str]:
    known = error.schema.get("properties", {})
    patterns = error.schema.get("patternProperties", {})
    return sorted(
        key
        for key in error.instance
        if key not in known and not any(re.search(p, str(key)) for p in patterns)
    )


def _unknown_key(key: str, schema: Mapping[str, Any]) -> str:
    known = list(schema.get("properties", {}))
    suggestion = _suggest(key, known)
    if suggestion or not known:
        return "unknown key" + suggestion
    return f"unknown key (expected one of: {', '.join(known)})"


def _bad_name(name: Any, parent: KeyPath) -> str:
    node = _subschema(_schema(), parent) or {}
    what = (node.get("propertyNames") or {}).get("title", "key")
    return (
        f"{_literal(name)} is not a valid {what} name: use lowercase letters, digits, "
        "'_' and '-', starting with a letter"
    )


def _misspelt_name_hint(path: KeyPath) -> str:
    """``providers.text.defualt`` reads as a provider named ``defualt``: point at ``default``."""
    if not path or not isinstance(path[-1], str):
        return ""
    parent = _subschema(_schema(), path[:-1]) or {}
    known = parent.get("properties", {})
    if not known or path[-1] in known:
        return ""
    return _suggest(path[-1], list(known))


def _suggest(word: Any, choices: Iterable[Any]) -> str:
    if not isinstance(word, str):
        return ""
    options = [c for c in choices if isinstance(c, str)]
    close = difflib.get_close_matches(word.lower(), options, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _semantic_problems(data: Mapping[str, Any]) -> Iterator[Problem]:
    """What the schema cannot say: a real time zone, delays in a sensible order."""
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
                f"{_literal(low)} is greater than retry.max_delay_ms ({_literal(high)})",
            )


def _timezone_problem(zone: str) -> str | None:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        known = zoneinfo.available_timezones()
        if not known:
            return None  # no time zone database here: nothing to check against
        return f"unknown time zone {zone!r}" + _suggest(zone, known)
    return None


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# ----------------------------------------------------------------------------- schema walking


def _subschema(schema: Mapping[str, Any], path: KeyPath) -> Mapping[str, Any] | None:
    """The schema that governs the value at ``path``, or None when the schema says nothing."""
    node = _deref(schema, schema)
    for part in path:
        nxt: Any
        if isinstance(part, int):
            nxt = node.get("items")
        elif part in node.get("properties", {}):
            nxt = node["properties"][part]
        else:
            nxt = node.get("additionalProperties")
            for pattern, sub in node.get("patternProperties", {}).items():
                if re.search(pattern, part):
                    nxt = sub
                    break
        if not isinstance(nxt, Mapping):
            return None
        node = _deref(schema, nxt)
    return node


def _deref(root: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        target: Any = root
        for piece in node["$ref"][2:].split("/"):
            target = target[piece]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def _accepts_string(schema: Mapping[str, Any], path: KeyPath) -> bool:
    node = _subschema(schema, path)
    if node is None:
        return True
    if "type" in node:
        types = node["type"]
        return "string" in ([types] if isinstance(types, str) else types)
    if "enum" in node:
        return any(isinstance(choice, str) for choice in node["enum"])
    return True


# ----------------------------------------------------------------------------- backends


_SECTION_BACKENDS = (
    ("caching", "cache backend", "memory"),
    ("rate_limiting", "limiter strategy", "token_bucket"),
    ("state", "state store", "file"),
)
_PER_PROVIDER_MAPS = (
    ("caching", "per_provider"),
    ("rate_limiting", "providers"),
    ("pricing", "providers"),
)


def _backend_references(config: Config) -> Iterator[tuple[KeyPath, str, str]]:
    """Every ``(path, kind, name)`` the config refers to, in a fixed order."""
    for section, kind, default in _SECTION_BACKENDS:
        yield (section, "backend"), kind, str(config.get(f"{section}.backend", default))
    providers = config.section("providers")
    for kind in ("text", "image"):
        for name, value in _mapping(providers.get(kind)).items():
            if name == "default":
                yield ("providers", kind, "default"), "provider", str(value)
            else:
                yield ("providers", kind, name), "provider", name
    for role, settings in config.section("roles").items():
        if isinstance(settings, Mapping) and "provider" in settings:
            yield ("roles", role, "provider"), "provider", str(settings["provider"])
    for section, key in _PER_PROVIDER_MAPS:
        for name in _mapping(config.get(f"{section}.{key}")):
            yield (section, key, name), "provider", name
    for name, settings in _mapping(config.get("pricing.providers")).items():
        if isinstance(settings, Mapping) and "cost_model" in settings:
            yield (
                ("pricing", "providers", name, "cost_model"),
                "cost model",
                str(settings["cost_model"]),
            )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


# ----------------------------------------------------------------------------- secrets


def _secret_key(key: str | int) -> bool:
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return lowered in _SECRET_KEYS or lowered.endswith(_SECRET_KEY_SUFFIXES)


def _secret_field(path: KeyPath) -> bool:
    """A key named like a secret whose schema takes text (``cost_per_input_token`` is a price)."""
    return bool(path) and _secret_key(path[-1]) and _accepts_string(_schema(), path)


def _named_secrets(data: Any, path: KeyPath = ()) -> set[str]:
    """Paths of string values under secret-looking keys (a price ``cost_per_input_token`` is a
    number, so it is not one)."""
    found: set[str] = set()
    if isinstance(data, Mapping):
        for key, value in data.items():
            here = (*path, key)
            if isinstance(value, str) and _secret_key(key):
                found.add(_dotted(here))
            else:
                found |= _named_secrets(value, here)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found |= _named_secrets(value, (*path, index))
    return found


def _redact(value: Any, path: KeyPath, secrets: frozenset[str]) -> Any:
    if path and _dotted(path) in secrets:
        return REDACTED
    if isinstance(value, Mapping):
        return {key: _redact(item, (*path, key), secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, (*path, index), secrets) for index, item in enumerate(value)]
    if isinstance(value, str):
        return _redact_url(value)
    return copy.deepcopy(value)


def _redact_url(text: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{REDACTED}@", text)


# ----------------------------------------------------------------------------- messages


def _error(problems: Iterable[Problem], source: str | None) -> ConfigError:
    """One :class:`ConfigError` for all problems: sorted by path, joined by ``; `` on one line."""
    ordered = sorted(set(problems), key=lambda problem: _sort_key(problem[0]))
    (first_path, first_message), rest = ordered[0], ordered[1:]
    parts = [first_message, *(f"{_dotted(p)}: {m}" if p else m for p, m in rest)]
    return ConfigError(_one_line("; ".join(parts)), path=_dotted(first_path), source=source)


def _sort_key(path: KeyPath) -> tuple[tuple[int, str], ...]:
    return tuple((0, f"{p:09d}") if isinstance(p, int) else (1, p) for p in path)


def _dotted(path: KeyPath) -> str:
    return ".".join(str(part) for part in path)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _literal(value: Any) -> str:
    """A short YAML-ish rendering of a value for a message, URL passwords hidden."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = _redact_url(value)
        return repr(text if len(text) <= 60 else text[:57] + "...")
    if isinstance(value, (int, float)):
        return repr(value)
    return _describe(value)


def _describe(value: Any) -> str:
    if isinstance(value, str):
        return f"the string {_literal(value)}"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {_literal(value)}"
    if value is None or isinstance(value, bool):
        return _literal(value)
    return _kind(value)


def _kind(value: Any) -> str:
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
