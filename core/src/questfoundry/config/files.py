"""Finding config.yml and reading it as plain data, within bounds.

A config file is small. Anything far larger, nested far deeper, or whose YAML aliases expand into
far more values than any real configuration is refused with one line before it is built, so a
hostile or broken file (a "billion laughs" of nested aliases, a 50 MB paste, 500 levels of
brackets) costs milliseconds, not minutes and gigabytes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from questfoundry.contracts.errors import ConfigError

CONFIG_ENV = "QUESTFOUNDRY_CONFIG"
PROJECT_DIR_NAME = ".questfoundry"
CONFIG_NAMES = ("config.yml", "config.yaml")

#: largest config file read, in bytes
MAX_BYTES = 1024 * 1024
#: deepest nesting of mappings and lists
MAX_DEPTH = 32
#: most values (scalars, mappings, lists) once every alias is expanded
MAX_VALUES = 100_000


def find_config(start: Path | None = None, env: Mapping[str, str] = os.environ) -> Path | None:
    """The config file to use: ``QUESTFOUNDRY_CONFIG``, else the nearest project's, else None.

    A project's ``config.yml`` that exists but is not a file (a folder) is an error, not skipped.
    """
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
            if candidate.exists():
                raise ConfigError(f"config file {candidate} is not a file")
    return None


def existing(path: str | Path) -> Path:
    """``path`` made absolute; it must be an existing file."""
    file = Path(path).expanduser().absolute()
    if not file.exists():
        raise ConfigError(f"config file {file} does not exist")
    if not file.is_file():
        raise ConfigError(f"config file {file} is not a file")
    return file


def read(file: Path) -> dict[str, Any]:
    """The file's top-level mapping, checked against the bounds above."""
    source = str(file)
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc}", source=source) from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(
            f"config file is larger than {MAX_BYTES // 1024} KiB; is it the right file?",
            source=source,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file: {exc}", source=source) from None
    return parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> dict[str, Any]:
    """Parse ``text``: its size after alias expansion and its depth are checked first."""
    import yaml

    try:
        _check_shape(text)
        data = yaml.load(text, Loader=_loader())  # a SafeLoader: builds plain data only
    except yaml.MarkedYAMLError as exc:
        raise ConfigError(_yaml_message(exc), source=source) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {_one_line(str(exc))}", source=source) from None
    except _TooBig as exc:
        raise ConfigError(str(exc), source=source) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        from questfoundry.config.validation import describe

        raise ConfigError(
            f"the top level must be a mapping of sections, got {describe(data)}", source=source
        )
    return data


class _TooBig(Exception):
    """The YAML is deeper, or expands to more values, than a config can be."""


def _check_shape(text: str) -> None:
    """Walk the parser's events (no tree is built): refuse deep nesting and alias explosions.

    Each node's expanded size is its own plus its children's; an alias counts the whole size of
    the node it repeats, which is exactly what building the tree and walking it would cost.
    """
    import yaml
    from yaml import events

    stack: list[list[Any]] = []  # [anchor, expanded size] of each open mapping or list
    anchors: dict[str, int] = {}
    total = 0

    def add(size: int, mark: Any) -> None:
        nonlocal total
        if stack:
            stack[-1][1] += size
            grown = stack[-1][1]
        else:
            total += size
            grown = total
        if grown > MAX_VALUES:
            raise _TooBig(
                f"the YAML expands to more than {MAX_VALUES:,} values{_at(mark)} "
                "(aliases repeating aliases?)"
            )

    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, events.CollectionStartEvent):
            stack.append([event.anchor, 1])
            if len(stack) > MAX_DEPTH:
                raise _TooBig(f"the YAML nests deeper than {MAX_DEPTH} levels{_at(event)}")
        elif isinstance(event, events.CollectionEndEvent):
            anchor, size = stack.pop()
            if anchor:
                anchors[anchor] = size
            add(size, event)
        elif isinstance(event, events.ScalarEvent):
            if event.anchor:
                anchors[event.anchor] = 1
            add(1, event)
        elif isinstance(event, events.AliasEvent):
            add(anchors.get(event.anchor or "", 1), event)


def _at(event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f" at line {mark.line + 1}" if mark else ""


def _yaml_message(exc: Any) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = exc.problem or exc.context or "unreadable"
    return f"invalid YAML{where}: {_one_line(problem)}"


def _one_line(text: str) -> str:
    return " ".join(text.split())


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
