"""Export and import of a whole state, as JSON or YAML (chosen by the file's extension).

The file, in either format::

    questfoundry_state: 1              # the file format
    schema_version: {questfoundry: 1}  # the versions the documents are at
    documents:                         # every document by key, sorted
      book/topology: {...}
    migrations: [...]                  # the migration log, with --include-history only

Export writes one document at a time to a temporary file renamed into place at the end, so
memory stays flat however large the state is (only the key list is held) and a failed export
leaves no half file. Every string of every document passes :class:`Redactor` first: registered
secrets, the config's secret values and anything shaped like an API key become ``***``.

Import reads and checks the whole file before writing anything — the format, the versions (never
newer than the code knows), every key (:func:`~questfoundry.kit.state_keys.key_problem`; two
spellings of one key, or a key named twice, are refused) and every document (a JSON object) —
then writes it as one change (:mod:`questfoundry.state.journal`). The file is read within bounds
(:data:`BOUNDS`, :mod:`questfoundry.contracts.bounded`): its size, its depth, what YAML aliases
expand to, and the size of each document.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal

from questfoundry.config.model import named_secrets, redact_url
from questfoundry.contracts.bounded import (
    Bounds,
    TooBig,
    Unreadable,
    load_json,
    load_yaml,
    read_at_most,
    shown,
    size_text,
)
from questfoundry.contracts.errors import MigrationError, StateError
from questfoundry.contracts.protocols import StateStore
from questfoundry.kit.redaction import Fragments, redact
from questfoundry.kit.state_keys import check_key, is_internal, key_problem
from questfoundry.state.history import HISTORY_KEY, is_history, log_document, migration_log
from questfoundry.state.journal import Step, commit, no_steps
from questfoundry.state.versions import (
    VERSION_KEY,
    Versions,
    describe,
    record,
    recorded,
    refuse_newer,
)

if TYPE_CHECKING:
    from questfoundry.config import Config

FORMAT_KEY = "questfoundry_state"
FORMAT_VERSION = 1
Format = Literal["json", "yaml"]
Mode = Literal["empty", "merge", "replace"]
#: called with how many documents are done, of how many
Progress = Callable[[int, int], None]

#: the largest state file read (100,000 documents of 1 KB export to about 110 MB)
MAX_FILE_BYTES = 256 * 1024 * 1024
#: the largest document, as JSON
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
#: how a state file is read: 64 levels deep at most; YAML aliases repeat 100,000 values at most
BOUNDS = Bounds(MAX_FILE_BYTES, 64, aliases=100_000)


def file_format(path: Path) -> Format:
    """``json`` or ``yaml`` from ``path``'s extension."""
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "json"
    if suffix in (".yml", ".yaml"):
        return "yaml"
    raise StateError(f"{path}: a state file ends in .json, .yaml or .yml, not {suffix!r}")


# ----------------------------------------------------------------------------- secrets


class Redactor:
    """Masks secrets in every string of a document; counts the strings it masked.

    Masked: ``secrets`` (e.g. :meth:`for_config`) and every fragment of one
    (:class:`~questfoundry.kit.redaction.Fragments`), every secret registered with
    :func:`~questfoundry.kit.redaction.register_secret`, credential-shaped text (``sk-…``,
    ``AIza…``, ``Authorization: …``) and passwords in URLs.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= 6}, key=len, reverse=True)
        self.fragments = Fragments(self.secrets)
        self.masked = 0

    @classmethod
    def for_config(cls, config: Config) -> Redactor:
        """A redactor that also masks every secret value of ``config`` (API keys, passwords)."""
        secrets = config.secret_paths | named_secrets(config.data)
        values = []
        for path in secrets:
            node: Any = config.data
            for part in path.split("."):
                node = node.get(part) if isinstance(node, Mapping) else None
            if isinstance(node, str):
                values.append(node)
        return cls(values)

    def text(self, value: str) -> str:
        """``value`` masked, counted when it changed."""
        masked = self._masked(value)
        if masked != value:
            self.masked += 1
        return masked

    def _masked(self, value: str) -> str:
        for secret in self.secrets:
            value = value.replace(secret, "***")
        return redact_url(redact(self.fragments.mask(value)))

    def __call__(self, value: Any) -> Any:
        """``value`` with every string masked; itself when nothing in it needs masking.

        The check runs once over all of the value's strings joined by newlines: whatever would
        change one string on its own changes the joined text too (a match inside one string is
        a match inside the joined text), so only a value that may need masking pays for a walk
        string by string.
        """
        if isinstance(value, str):
            return self.text(value)
        joined = "\n".join(_strings(value))
        if self._masked(joined) == joined:
            return value
        return self._walk(value)

    def _walk(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(k): self._walk(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        return value


def _strings(value: Any) -> Iterator[str]:
    """Every string in a JSON value, keys of objects included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


# ----------------------------------------------------------------------------- writing


@dataclass
class Exported:
    """What an export wrote."""

    path: Path
    documents: int
    masked: int = 0


def export_state(
    store: StateStore,
    path: Path,
    *,
    include_history: bool = False,
    redactor: Redactor | None = None,
    progress: Progress | None = None,
) -> Exported:
    """Write ``store``'s whole state to ``path`` (see the module); ``redactor`` None: exact."""
    fmt = file_format(path)
    keys = [k for k in store.list_keys() if include_history or not is_history(k)]
    versions = recorded(store) or {}
    log = migration_log(store) if include_history else None
    clean: Callable[[Any], Any] = redactor or _same
    count = 0

    def documents() -> Iterator[tuple[str, Any]]:
        nonlocal count
        for key in keys:
            document = store.get(key)
            if document is not None:  # deleted since it was listed
                yield clean(key), clean(document)
                count += 1
                if progress is not None:
                    progress(count, len(keys))

    _write_atomically(path, lambda handle: _write(handle, fmt, versions, documents(), log))
    return Exported(path, count, redactor.masked if redactor else 0)


def _same(value: Any) -> Any:
    return value


def _write_atomically(path: Path, write: Callable[[IO[str]], None]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise StateError(f"{path} cannot be written: {exc}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).chmod(0o600)
        Path(tmp).replace(path)
    except OSError as exc:
        raise StateError(f"{path} cannot be written: {exc}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)


def _write(
    out: IO[str],
    fmt: Format,
    versions: Versions,
    documents: Iterable[tuple[str, Any]],
    log: list[dict[str, Any]] | None,
) -> None:
    versions = record(versions)["versions"]  # type: ignore[assignment]
    if fmt == "json":
        _write_json(out, versions, documents, log)
    else:
        _write_yaml(out, versions, documents, log)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, allow_nan=False)


def _write_json(
    out: IO[str],
    versions: Versions,
    documents: Iterable[tuple[str, Any]],
    log: list[dict[str, Any]] | None,
) -> None:
    out.write(f'{{\n"{FORMAT_KEY}": {FORMAT_VERSION},\n"schema_version": {_dumps(versions)},\n')
    out.write('"documents": {')
    separator = "\n"
    for key, document in documents:
        out.write(f"{separator}{_dumps(key)}: {_dumps(document)}")
        separator = ",\n"
    out.write("\n}" if separator != "\n" else "}")
    if log is not None:
        out.write(',\n"migrations": [')
        out.write(",".join("\n" + _dumps(entry) for entry in log))
        out.write("\n]" if log else "]")
    out.write("\n}\n")


def _write_yaml(
    out: IO[str],
    versions: Versions,
    documents: Iterable[tuple[str, Any]],
    log: list[dict[str, Any]] | None,
) -> None:
    import yaml

    def dump(value: Any) -> str:
        return yaml.dump(
            value,
            Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper),
            sort_keys=True,
            allow_unicode=True,
            default_flow_style=False,
            width=1 << 30,  # never fold a line: the same text whatever its length
        )

    out.write(dump({FORMAT_KEY: FORMAT_VERSION, "schema_version": versions}))
    empty = True
    for key, document in documents:
        if empty:
            out.write("documents:\n")
            empty = False
        out.write("".join("  " + line for line in dump({key: document}).splitlines(True)))
    if empty:
        out.write("documents: {}\n")
    if log is not None:
        out.write(dump({"migrations": log}))


# ----------------------------------------------------------------------------- reading


@dataclass
class StateFile:
    """A state file, read and checked whole."""

    path: Path
    versions: Versions
    documents: dict[str, dict[str, Any]]
    migrations: list[dict[str, Any]] | None = field(default=None)


def read_state_file(path: Path, known: Mapping[str, int]) -> StateFile:
    """Parse and check ``path`` whole; one :class:`StateError` line for the first problem."""
    fmt = file_format(path)
    try:
        with path.open("rb") as handle:
            raw = read_at_most(handle, MAX_FILE_BYTES)
    except FileNotFoundError:
        raise StateError(f"{path}: no such file") from None
    except OSError as exc:
        raise StateError(f"{path} cannot be read: {exc}") from None
    if raw is None:
        raise StateError(f"{path} is larger than {size_text(MAX_FILE_BYTES)}: not a state file")
    try:
        data = load_json(raw, BOUNDS) if fmt == "json" else load_yaml(_text(raw), BOUNDS, fast=True)
    except TooBig as exc:
        raise StateError(f"{path} is refused: {exc}") from None
    except Unreadable as exc:
        raise StateError(f"{path} is not valid {fmt.upper()}: {exc}") from None

    def bad(message: str) -> StateError:
        return StateError(f"{path}: {message}")

    if not isinstance(data, dict) or data.get(FORMAT_KEY) != FORMAT_VERSION:
        raise bad(f"not a QuestFoundry state file ({FORMAT_KEY}: {FORMAT_VERSION} is missing)")
    unknown = set(data) - {FORMAT_KEY, "schema_version", "documents", "migrations"}
    if unknown:
        raise bad(f"unknown top-level keys {sorted(unknown)}")
    versions = data.get("schema_version", {})
    if not isinstance(versions, dict) or not all(
        isinstance(s, str) and type(n) is int and n >= 0 for s, n in versions.items()
    ):
        raise bad("schema_version must map scope names to versions (whole numbers >= 0)")
    refuse_newer(versions, known)
    documents = data.get("documents")
    if not isinstance(documents, dict):
        raise bad("documents must be a mapping of keys to documents")
    problem = next((p for k, d in documents.items() if (p := entry_problem(k, d))), None)
    if problem is not None:
        raise bad(problem)
    documents = _normalised(documents, bad)
    migrations = data.get("migrations")
    if migrations is not None and (
        not isinstance(migrations, list)
        or any(_json_problem(e, "migrations[]", top=True) for e in migrations)
    ):
        raise bad("migrations must be a list of JSON objects")
    return StateFile(path, dict(versions), documents, migrations)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Unreadable(f"the YAML is not UTF-8 text ({exc.reason})") from None


def _normalised(
    documents: dict[str, dict[str, Any]], bad: Callable[[str], StateError]
) -> dict[str, dict[str, Any]]:
    """``documents`` by the keys a store keeps (NFC); a key twice (two spellings of one key) or
    a document larger than :data:`MAX_DOCUMENT_BYTES` is refused, naming the key."""
    result: dict[str, dict[str, Any]] = {}
    for key, document in documents.items():
        normal = check_key(key)
        if normal in result:
            raise bad(f"the key {shown(normal)} is there twice (two spellings of one key)")
        size = len(_dumps(document).encode())
        if size > MAX_DOCUMENT_BYTES:
            raise bad(
                f"document {shown(normal)} is {size:,} bytes; a document may have at most "
                f"{size_text(MAX_DOCUMENT_BYTES)}"
            )
        result[normal] = document
    return result


def entry_problem(key: Any, document: Any) -> str | None:
    """Why ``key: document`` cannot be a state entry (a bad or internal key, not a JSON object)."""
    problem = key_problem(key)
    if problem is None and is_internal(key):
        problem = f"state key {key!r} is reserved for the store's own records"
    return problem or _json_problem(document, f"document {key!r}", top=True)


def _json_problem(value: Any, where: str, top: bool = False) -> str | None:
    """Why ``value`` is not plain JSON (a JSON object when ``top``), or None."""
    if top and not isinstance(value, dict):
        return f"{where} must be a JSON object, not {type(value).__name__}"
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{where} has a key {key!r} that is not a string"
            problem = _json_problem(item, f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(value, list):
        return next(
            (p for i, v in enumerate(value) if (p := _json_problem(v, f"{where}[{i}]"))), None
        )
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where} is {value}, which JSON cannot hold"
    if value is None or isinstance(value, (str, int, float)):
        return None
    return f"{where} is a {type(value).__name__}, which JSON cannot hold"


# ----------------------------------------------------------------------------- importing


@dataclass
class Imported:
    """What an import wrote."""

    path: Path
    written: int
    deleted: int
    versions: Versions


def import_state(
    store: StateStore,
    state: StateFile,
    mode: Mode = "empty",
    *,
    step: Step = no_steps,
) -> Imported:
    """Write a checked :class:`StateFile` into ``store`` as one all-or-nothing change.

    ``empty``: the store must hold no documents; ``merge``: the file's documents are written over
    the store's, others kept (both at the same schema versions); ``replace``: the store ends
    holding exactly the file's documents.
    """
    existing = store.list_keys()
    current = recorded(store) or {}
    if mode == "empty" and existing:
        raise StateError(
            f"the store already holds {len(existing)} documents; import with --merge to add to "
            "them, or --replace to replace them"
        )
    if mode == "merge" and existing and record(current) != record(state.versions):
        raise MigrationError(
            f"the file's schema ({_versions(state.versions)}) differs from the store's "
            f"({_versions(current)}); migrate one of them first"
        )
    writes: dict[str, dict[str, Any] | None] = dict(state.documents)
    deleted = 0
    if mode == "replace":
        for key in existing:
            if key not in writes:
                writes[key] = None
                deleted += 1
    if mode != "merge" or not existing:
        writes[VERSION_KEY] = record(state.versions)
    if state.migrations is not None:
        log = migration_log(store) if mode == "merge" else []
        log += [entry for entry in state.migrations if entry not in log]
        writes[HISTORY_KEY] = log_document(log)
    commit(store, writes, f"the import of {state.path.name}", step)
    return Imported(state.path, len(state.documents), deleted, state.versions)


def _versions(versions: Mapping[str, int]) -> str:
    return describe({s: n for s, n in versions.items() if n})
