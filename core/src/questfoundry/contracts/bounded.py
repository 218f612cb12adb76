"""Reading JSON and YAML within bounds, so a hostile or broken text costs milliseconds.

Everything QuestFoundry reads from outside reads through here, each with its own
:class:`Bounds`: config files and ``--set`` values (:mod:`questfoundry.config.files`), state
imports (:mod:`questfoundry.state.exchange`) and structured replies
(:mod:`questfoundry.contracts.structured`). A text that is larger, nested deeper, or whose YAML
aliases expand into more values than its bounds allow is refused before a tree is built (a
"billion laughs" of nested aliases, a 50 MB paste, 200,000 levels of brackets), and a mapping
that names a key twice is refused naming it (plain JSON and YAML keep the last one silently).
Every refusal is an :class:`Unreadable` whose message is one line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import IO, Any

#: how much of a key or a value a message quotes
QUOTED = 60


@dataclass(frozen=True)
class Bounds:
    """What a text may be: ``size`` characters, ``depth`` levels of mappings and lists, and at
    most ``values`` values (scalars, mappings, lists) once YAML aliases expand, of which aliases
    may repeat at most ``aliases``. None: no limit beyond the size."""

    size: int
    depth: int
    values: int | None = None
    aliases: int | None = None


class Unreadable(ValueError):
    """The text is not valid JSON or YAML, or names a key twice; the message is one line."""


class TooBig(Unreadable):
    """The text breaks its :class:`Bounds`; the message says which bound, on one line."""


def read_at_most(handle: IO[bytes], limit: int) -> bytes | None:
    """All of ``handle``'s bytes, or None when there are more than ``limit``: read a piece at a
    time, so a file far larger than the limit (or one without end) costs no more than it."""
    pieces: list[bytes] = []
    total = 0
    while piece := handle.read(min(1 << 20, limit + 1 - total)):
        pieces.append(piece)
        total += len(piece)
        if total > limit:
            return None
    return b"".join(pieces)


def load_json(text: str | bytes, bounds: Bounds) -> Any:
    """The JSON value of ``text`` within ``bounds`` (no aliases in JSON: size and depth)."""
    if len(text) > bounds.size:
        raise TooBig(f"the JSON is larger than {size_text(bounds.size)}")
    try:
        value = json.loads(text, object_pairs_hook=_unique)
    except RecursionError:  # the decoder's own guard: far deeper than any bound
        raise TooBig(f"the JSON nests deeper than {bounds.depth} levels") from None
    except UnicodeDecodeError as exc:
        raise Unreadable(f"the JSON is not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise Unreadable(
            f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    if depth(value, bounds.depth) > bounds.depth:
        raise TooBig(f"the JSON nests deeper than {bounds.depth} levels")
    return value


def load_yaml(text: str, bounds: Bounds, *, fast: bool = False) -> Any:
    """The YAML value of ``text`` within ``bounds``, built as plain data (a safe loader).

    ``fast``: parse with libyaml where PyYAML has it (large files); its messages differ a little
    from the pure-Python parser's, which small files keep.
    """
    import yaml

    if len(text) > bounds.size:
        raise TooBig(f"the YAML is larger than {size_text(bounds.size)}")
    loader = _unique_key_loader(fast)
    try:
        _check_shape(yaml.parse(text, Loader=loader), bounds)
        return yaml.load(text, Loader=loader)
    except yaml.MarkedYAMLError as exc:
        raise Unreadable(_yaml_message(exc)) from None
    except yaml.YAMLError as exc:
        raise Unreadable(f"invalid YAML: {one_line(str(exc))}") from None


def depth(value: Any, limit: int) -> int:
    """How deeply ``value``'s mappings and lists nest (a scalar: 0), counted no further than
    ``limit + 1``; iterative, so any depth is safe to measure."""
    if not isinstance(value, (dict, list)):
        return 0
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack and deepest <= limit:
        node, level = stack.pop()
        deepest = max(deepest, level)
        children: Iterable[Any] = node.values() if isinstance(node, dict) else node
        stack.extend((child, level + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def size_text(size: int) -> str:
    """``1024 KiB``, ``64 MiB``: a size bound for a message."""
    if size >= 1 << 20 and size % (1 << 20) == 0:
        return f"{size >> 20} MiB"
    return f"{size // 1024} KiB" if size >= 1024 else f"{size} bytes"


def shown(text: str) -> str:
    """``text`` quoted for a message, cut to :data:`QUOTED` characters."""
    return repr(text if len(text) <= QUOTED else text[: QUOTED - 1] + "…")


def one_line(text: str) -> str:
    return " ".join(text.split())


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refusing a key it names twice."""
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise Unreadable(f"the JSON names the key {shown(key)} twice in one object")
            seen.add(key)
    return result


def _check_shape(events: Iterable[Any], bounds: Bounds) -> None:
    """Walk the parser's events (no tree is built): refuse deep nesting and alias explosions.

    Each node's expanded size is its own plus its children's; an alias counts the whole size of
    the node it repeats, which is exactly what building the tree and walking it would cost.
    """
    from yaml import events as kinds

    stack: list[list[Any]] = []  # [anchor, expanded size] of each open mapping or list
    anchors: dict[str, int] = {}
    total = repeated = 0

    def add(size: int, event: Any) -> None:
        nonlocal total
        if stack:
            stack[-1][1] += size
            grown = stack[-1][1]
        else:
            total += size
            grown = total
        if bounds.values is not None and grown > bounds.values:
            raise TooBig(
                f"the YAML expands to more than {bounds.values:,} values{_at(event)} "
                "(aliases repeating aliases?)"
            )

    for event in events:
        if isinstance(event, kinds.CollectionStartEvent):
            stack.append([event.anchor, 1])
            if len(stack) > bounds.depth:
                raise TooBig(f"the YAML nests deeper than {bounds.depth} levels{_at(event)}")
        elif isinstance(event, kinds.CollectionEndEvent):
            anchor, size = stack.pop()
            if anchor:
                anchors[anchor] = size
            add(size, event)
        elif isinstance(event, kinds.ScalarEvent):
            if event.anchor:
                anchors[event.anchor] = 1
            add(1, event)
        elif isinstance(event, kinds.AliasEvent):
            size = anchors.get(event.anchor or "", 1)
            repeated += size
            if bounds.aliases is not None and repeated > bounds.aliases:
                raise TooBig(
                    f"the YAML's aliases repeat more than {bounds.aliases:,} values{_at(event)} "
                    "(aliases repeating aliases?)"
                )
            add(size, event)


def _at(event: Any) -> str:
    mark = getattr(event, "start_mark", None)
    return f" at line {mark.line + 1}" if mark else ""


def _yaml_message(exc: Any) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = exc.problem or exc.context or "unreadable"
    return f"invalid YAML{where}: {one_line(problem)}"


@cache
def _unique_key_loader(fast: bool) -> type[Any]:
    """A safe loader (libyaml's when ``fast`` and available) that refuses duplicate keys."""
    import yaml

    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader) if fast else yaml.SafeLoader

    class Loader(base):  # type: ignore[valid-type,misc]
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
                        shown_key = shown(key) if isinstance(key, str) else repr(key)[:QUOTED]
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key {shown_key}", key_node.start_mark
                        )
            result: dict[Any, Any] = super().construct_mapping(node, deep=deep)
            return result

    return Loader
