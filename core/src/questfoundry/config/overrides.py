"""Runtime overrides: ``--set KEY=VALUE`` laid over config.yml before it is validated.

``KEY`` is a dotted path (``roles.gatekeeper.model``, ``providers.text.default``); ``VALUE`` is
read as YAML, so ``0.2`` is a number, ``true`` a boolean and ``gpt-4o-mini`` text. The merged
data is then interpolated and validated exactly as if the file said it, and every value an
override set is labelled ``--set`` wherever sources are shown.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from questfoundry.config.files import BOUNDS, MAX_DEPTH
from questfoundry.config.model import KeyPath, dotted
from questfoundry.contracts.bounded import TooBig, Unreadable, load_yaml, shown
from questfoundry.contracts.errors import ConfigError

#: the source label of a value an override set
SET = "--set"
#: the longest key an override may name, in characters
MAX_KEY = 1024


def parse_assignments(items: Iterable[str], option: str) -> dict[str, Any]:
    """``["a.b=1", …]`` as ``{"a.b": 1, …}``, each value read as YAML; later items win.

    Values are read within the bounds of config.yml itself (:data:`~questfoundry.config.files.
    BOUNDS`), and a key has at most as many dotted parts as config.yml has levels, in at most
    :data:`MAX_KEY` characters. A malformed item raises :class:`ConfigError` naming ``option``
    and the item (never the value: it may be a secret).
    """
    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{option} {shown(item)}: expected KEY=VALUE")
        if len(key) > MAX_KEY or key.count(".") >= MAX_DEPTH:
            raise ConfigError(
                f"{option} {shown(key)}: a key has at most {MAX_DEPTH} dotted parts and "
                f"{MAX_KEY} characters"
            )
        try:
            values[key] = load_yaml(text, BOUNDS)
        except TooBig as exc:
            raise ConfigError(f"{option} {key}: {exc}") from None
        except Unreadable:
            raise ConfigError(f"{option} {key}: the value is not valid YAML; quote it") from None
    return values


def apply_overrides(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``data`` with each dotted key of ``overrides`` set to its value."""
    merged: dict[str, Any] = copy.deepcopy(dict(data))
    for key, value in overrides.items():
        parts = key.split(".")
        if not all(parts):
            raise ConfigError(f"{SET} {key!r}: a key is dotted names, none of them empty")
        node = merged
        for depth, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                above = ".".join(parts[: depth + 1])
                raise ConfigError(
                    f"holds a value, not a section: {SET} {key} cannot set a key below it",
                    path=above,
                )
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return merged


def overridden(path: str, keys: Collection[str]) -> bool:
    """Whether an override set dotted ``path`` itself or a section above it."""
    if path in keys:
        return True
    parts = path.split(".")
    return any(".".join(parts[:end]) in keys for end in range(1, len(parts)))


def blamed(paths: Iterable[KeyPath], keys: Collection[str], file_data: Any = None) -> bool:
    """Whether the problems at ``paths`` are all the overrides' (``keys``) doing: each at a path
    an override set or one below it, or at one the file's data (``file_data``, when known) does
    not have, so an override made it."""
    if not keys:
        return False
    return all(
        overridden(dotted(path), keys) or (file_data is not None and not _holds(file_data, path))
        for path in paths
    )


def _holds(data: Any, path: KeyPath) -> bool:
    """Whether ``data`` has a value at ``path``."""
    for part in path:
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_list or (isinstance(data, Mapping) and part in data)):
            return False
        data = data[part]
    return True
