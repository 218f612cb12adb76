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

from questfoundry.contracts.errors import ConfigError

#: the source label of a value an override set
SET = "--set"


def parse_assignments(items: Iterable[str], option: str) -> dict[str, Any]:
    """``["a.b=1", …]`` as ``{"a.b": 1, …}``, each value read as YAML; later items win.

    A malformed item raises :class:`ConfigError` naming ``option`` and the item.
    """
    import yaml

    values: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"{option} {item!r}: expected KEY=VALUE")
        try:
            values[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            # the value is not shown: it may be a key's
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
