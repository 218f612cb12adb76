"""``${VAR}`` and ``${VAR:-default}`` in every string of a config tree.

``$${`` writes a literal ``${``. When a whole value is exactly one ``${VAR}`` and the schema does
not accept a string there, the text is read as a YAML scalar, so ``max_retries: ${RETRIES}`` gives
an integer; where a string is accepted (API keys, names, URLs) the text is kept as it is. A
variable that is not set leaves an :class:`~questfoundry.config.model.Unresolved` in its place.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from questfoundry.config.model import KeyPath, Unresolved, dotted

# `$${` escapes; `${NAME}` / `${NAME:-default}` substitute; any other `${...` is malformed.
_REFERENCE = re.compile(
    r"\$\$\{"
    r"|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<fallback>:-(?P<default>[^}]*))?\}"
    r"|\$\{[^}]*\}?"
)
_HOW = "write ${NAME} or ${NAME:-default}"
_SECRET_VAR_WORDS = ("KEY", "TOKEN", "SECRET", "PASS", "CREDENTIAL")

Problem = tuple[KeyPath, str]


class Interpolator:
    """Fills ``${VAR}`` references in every string of a YAML tree, collecting problems.

    ``accepts_string(path)`` says whether the schema takes text at ``path``; ``sources`` records,
    per dotted path, the variables that filled it.
    """

    def __init__(self, env: Mapping[str, str], accepts_string: Callable[[KeyPath], bool]) -> None:
        self.env = env
        self.accepts_string = accepts_string
        self.problems: list[Problem] = []
        self.secrets: set[str] = set()
        self.sources: dict[str, list[str]] = {}

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
        unset: list[str] = []
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
                unset.append(name)
                return ""
            return value

        result = _REFERENCE.sub(replace, text)
        if names:
            self.sources[dotted(path)] = names
        if any(_secret_variable(name) for name in names):
            self.secrets.add(dotted(path))
        if len(self.problems) > before:
            return result
        if unset:
            return Unresolved(dotted(path), unset[0], text)
        whole = _REFERENCE.fullmatch(text)
        if whole and whole.group("name"):
            return self.coerce(result, path)
        return result

    def coerce(self, text: str, path: KeyPath) -> Any:
        """``text`` as a number or boolean where the schema wants one and not a string."""
        if self.accepts_string(path):
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
