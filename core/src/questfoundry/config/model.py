"""The loaded configuration, the values whose variables are unset, and what counts as a secret.

A ``${VAR}`` that is not set (and has no default) does not fail loading: the value becomes an
:class:`Unresolved`, and only reading it — :meth:`Config.get` or :meth:`Config.section` of
anything that contains it, as building that provider does — raises the one-line
:class:`~questfoundry.contracts.errors.ConfigError`. So ``cost report`` works while
``OPENAI_API_KEY`` is unset; ``ask`` on an OpenAI role does not, and says why.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from questfoundry.config.files import PROJECT_DIR_NAME
from questfoundry.contracts.errors import ConfigError

REDACTED = "***"

_SECRET_KEYS = frozenset({"api_key", "password", "token", "secret"})
_SECRET_KEY_SUFFIXES = ("_key", "_token", "_secret", "_password")
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):(?P<password>[^@/\s]+)@")

KeyPath = tuple[str | int, ...]


@dataclass(frozen=True)
class Unresolved:
    """A value that names an environment variable which is not set."""

    path: str
    variable: str
    text: str  #: the value as written, e.g. ``${OPENAI_API_KEY}``

    def error(self, source: str | None = None) -> ConfigError:
        return ConfigError(
            f"environment variable {self.variable} is not set", path=self.path, source=source
        )


@dataclass(frozen=True)
class Config:
    """A loaded configuration: the interpolated, validated data, and where it came from.

    ``data`` holds only what the file says (an unset variable as an :class:`Unresolved`);
    defaults apply where a key is read. ``questfoundry config show`` prints them filled in.
    """

    data: Mapping[str, Any] = field(default_factory=dict)
    path: Path | None = None
    project_dir: Path = field(default_factory=lambda: Path.cwd() / PROJECT_DIR_NAME)
    secret_paths: frozenset[str] = frozenset()
    #: dotted path → the environment variables its value was filled from
    variables: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: the dotted keys ``--set`` overrides gave (their values are in ``data``)
    overridden: frozenset[str] = frozenset()

    def section(self, name: str) -> dict[str, Any]:
        """A copy of the top-level section ``name``; ``{}`` when the file has none.

        Raises :class:`ConfigError` when it holds a value whose variable is unset.
        """
        value = self.data.get(name)
        if not isinstance(value, Mapping):
            return {}
        self._require(value)
        return copy.deepcopy(dict(value))

    def get(self, dotted: str, default: Any = None) -> Any:
        """The value at ``dotted`` (e.g. ``"caching.per_provider.openai.ttl_seconds"``).

        Raises :class:`ConfigError` when it is, or holds, a value whose variable is unset.
        """
        node: Any = self.data
        for part in dotted.split("."):
            if isinstance(node, Mapping) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return default
        self._require(node)
        return node

    @property
    def unresolved(self) -> list[Unresolved]:
        """Every value whose environment variable is unset, by path."""
        return sorted(_unresolved(self.data), key=lambda value: value.path)

    def require_variables(self) -> None:
        """Raise one :class:`ConfigError` naming every unset variable (``config validate``)."""
        missing = self.unresolved
        if missing:
            first, rest = missing[0], missing[1:]
            parts = [
                f"environment variable {first.variable} is not set",
                *(f"{m.path}: environment variable {m.variable} is not set" for m in rest),
            ]
            raise ConfigError("; ".join(parts), path=first.path, source=self.source)

    @property
    def source(self) -> str | None:
        return str(self.path) if self.path else None

    @property
    def namespace(self) -> str:
        """What prefixes shared keys: ``project.name``, else the project root folder's name."""
        name = self.get("project.name")
        if isinstance(name, str) and name:
            return name
        return self.project_dir.absolute().parent.name or "default"

    def redacted(self, data: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """A deep copy of ``data`` (default: the file's) safe to print: secrets become ``***``,
        URL passwords too; an unset variable shows as written."""
        data = self.data if data is None else data
        secrets = self.secret_paths | named_secrets(data)
        result = _redact(data, (), secrets)
        return result if isinstance(result, dict) else {}

    def _require(self, value: Any) -> None:
        for missing in sorted(_unresolved(value), key=lambda item: item.path):
            raise missing.error(self.source)


def _unresolved(value: Any) -> Iterator[Unresolved]:
    if isinstance(value, Unresolved):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _unresolved(item)
    elif isinstance(value, list):
        for item in value:
            yield from _unresolved(item)


def without_unresolved(value: Any) -> Any:
    """``value`` with every :class:`Unresolved` left out, for validating what is known."""
    if isinstance(value, Mapping):
        return {k: without_unresolved(v) for k, v in value.items() if not isinstance(v, Unresolved)}
    if isinstance(value, list):
        return [without_unresolved(v) for v in value if not isinstance(v, Unresolved)]
    return value


# ----------------------------------------------------------------------------- secrets


def secret_key(key: str | int) -> bool:
    """Keys named like ``api_key``, ``password``, ``token``, ``secret`` or ending like them."""
    if not isinstance(key, str):
        return False
    lowered = key.lower()
    return lowered in _SECRET_KEYS or lowered.endswith(_SECRET_KEY_SUFFIXES)


def named_secrets(data: Any, path: KeyPath = ()) -> set[str]:
    """Paths of text values under secret-looking keys (a price ``cost_per_input_token`` is a
    number, so it is not one)."""
    found: set[str] = set()
    if isinstance(data, Mapping):
        for key, value in data.items():
            here = (*path, key)
            if isinstance(value, (str, Unresolved)) and secret_key(key):
                found.add(dotted(here))
            else:
                found |= named_secrets(value, here)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found |= named_secrets(value, (*path, index))
    return found


def _redact(value: Any, path: KeyPath, secrets: frozenset[str]) -> Any:
    if path and dotted(path) in secrets:
        return REDACTED
    if isinstance(value, Unresolved):
        return value.text
    if isinstance(value, Mapping):
        return {key: _redact(item, (*path, key), secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_redact(item, (*path, index), secrets) for index, item in enumerate(value)]
    if isinstance(value, str):
        return redact_url(value)
    return copy.deepcopy(value)


def redact_url(text: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"{m.group('head')}:{REDACTED}@", text)


def dotted(path: KeyPath) -> str:
    return ".".join(str(part) for part in path)
