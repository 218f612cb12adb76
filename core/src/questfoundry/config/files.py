"""Finding config.yml and reading it as plain data, within bounds.

A config file is small. Anything far larger, nested far deeper, or whose YAML aliases expand into
far more values than any real configuration is refused with one line before it is built, so a
hostile or broken file (a "billion laughs" of nested aliases, a 50 MB paste, 500 levels of
brackets) costs milliseconds, not minutes and gigabytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from questfoundry.contracts.bounded import Bounds, Unreadable, load_yaml, read_at_most
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
#: the bounds of a config file, and of each ``--set`` value
BOUNDS = Bounds(MAX_BYTES, MAX_DEPTH, MAX_VALUES)


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


def read(file: Path) -> Any:
    """The file's YAML (``{}`` when empty), checked against the bounds above; whether it is a
    mapping of sections is the validation's to say."""
    source = str(file)
    try:
        with file.open("rb") as handle:
            raw = read_at_most(handle, MAX_BYTES)
    except OSError as exc:
        raise ConfigError(f"cannot read config file: {exc}", source=source) from None
    if raw is None:
        raise ConfigError(
            f"config file is larger than {MAX_BYTES // 1024} KiB; is it the right file?",
            source=source,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"cannot read config file: {exc}", source=source) from None
    return parse_yaml(text, source)


def parse_yaml(text: str, source: str) -> Any:
    """Parse ``text`` within :data:`BOUNDS` (:mod:`questfoundry.contracts.bounded`)."""
    try:
        data = load_yaml(text, BOUNDS)
    except Unreadable as exc:
        raise ConfigError(str(exc), source=source) from None
    return {} if data is None else data


@contextmanager
def unquoted_outside(file: Path | None) -> Iterator[None]:
    """Within: a :class:`ConfigError` about ``file`` quotes none of it when ``file`` is a link to
    a file outside its project (the folder holding ``.questfoundry``): a link must not print
    another file's lines. The error names that file instead, to check by name."""
    try:
        yield
    except ConfigError as exc:
        target = _outside_target(file)
        if target is None or exc.source != str(file):
            raise
        raise ConfigError(
            f"{file} links to {target}, outside the project, so its problems are not quoted "
            f"here: check it with `questfoundry config validate {target}`"
        ) from None


def _outside_target(file: Path | None) -> Path | None:
    """The file ``file`` resolves to, when that is outside ``file``'s project; else None."""
    if file is None:
        return None
    target = file.resolve()
    root = file.absolute().parent.parent.resolve()
    return None if target.is_relative_to(root) else target
