"""Reading ``.questfoundry/config.yml``: find it, fill in environment variables, validate it.

Where the file comes from, first match wins:

1. the path given to :func:`load_config` (the CLI's ``--config``), which must exist;
2. ``QUESTFOUNDRY_CONFIG``, which must name an existing file;
3. ``.questfoundry/config.yml`` (or ``config.yaml``) in the working directory or any parent
   (one that exists but is a folder is an error).

No file at all is fine: the configuration is then empty and every default applies. A file larger
than 1 MiB, nested deeper than 32 levels or whose aliases expand past 100,000 values is refused
(:mod:`questfoundry.config.files`), and so is a ``--set`` value beyond those bounds. A file that
is a link to one outside its project is read, but its problems are not quoted: the error names
the file it links to, to check by name.

Strings may use ``${VAR}`` and ``${VAR:-default}`` (:mod:`questfoundry.config.interpolate`). A
variable that is not set fails only what reads that value (:mod:`questfoundry.config.model`);
``questfoundry config validate`` reports it at once.

The result is validated against the schema composed from ``schemas/config.schema.json`` and the
settings every installed backend declares (:mod:`questfoundry.config.schema`); every problem is
reported, each as ``dotted.path: message``, in one
:class:`~questfoundry.contracts.errors.ConfigError`.

Secrets never leave :meth:`Config.redacted`: values of keys named like ``api_key``, ``password``,
``token``, ``secret`` (or ending in ``_key``, ``_token``, ``_secret``, ``_password``), values
filled from environment variables named like a secret (``*KEY*``, ``*TOKEN*``, ``*SECRET*``,
``*PASS*``, ``*CREDENTIAL*``), and passwords inside URLs. Error messages do not show them either.

``yaml`` and ``jsonschema`` are imported only when a file is read or validated, so importing
QuestFoundry stays cheap.

``overrides`` (the CLI's ``--set KEY=VALUE``) are merged into the file's data before it is
interpolated and validated; a problem they alone cause (at a key they set, or made) says
``(in --set)``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from questfoundry.config.files import CONFIG_ENV, PROJECT_DIR_NAME, find_config
from questfoundry.config.model import REDACTED, Config, Unresolved

if TYPE_CHECKING:
    from questfoundry.registry import PluginManager

__all__ = [
    "CONFIG_ENV",
    "PROJECT_DIR_NAME",
    "REDACTED",
    "Config",
    "Unresolved",
    "check_backends",
    "find_config",
    "load_config",
    "load_schema",
    "validate",
]


def load_config(
    path: str | Path | None = None,
    *,
    env: Mapping[str, str] = os.environ,
    start: Path | None = None,
    manager: PluginManager | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Find, read, interpolate and validate the configuration; see the module docstring.

    ``manager`` supplies the backends whose settings are validated; by default the plugins
    ``env`` selects. ``overrides`` (dotted key → value, the CLI's ``--set``) are laid over the
    file's data before anything is checked (:mod:`questfoundry.config.overrides`).
    """
    from questfoundry.config import files

    file = files.existing(path) if path is not None else find_config(start, env)
    project_dir = file.parent if file else (start or Path.cwd()).absolute() / PROJECT_DIR_NAME
    if file is None and not overrides:
        return Config({}, None, project_dir)
    from questfoundry.config.interpolate import Interpolator
    from questfoundry.config.model import named_secrets, without_unresolved
    from questfoundry.config.overrides import SET, apply_overrides, blamed
    from questfoundry.config.validation import Validation, describe, error
    from questfoundry.contracts.errors import ConfigError

    with files.unquoted_outside(file):
        source = str(file) if file else None
        from_file = files.read(file) if file else {}
        if not isinstance(from_file, dict):
            got = f"the top level must be a mapping of sections, got {describe(from_file)}"
            raise ConfigError(got, source=source)
        raw = apply_overrides(from_file, overrides) if overrides else from_file
        validation = Validation(_manager(manager, env))
        interpolator = Interpolator(env, validation.accepts_string)
        data = interpolator.walk(raw, ())
        problems = interpolator.problems
        secrets = interpolator.secrets | named_secrets(data)
        if not problems:
            problems = validation.problems(without_unresolved(data), frozenset(secrets))
        if problems:
            ours = blamed([where for where, _ in problems], set(overrides or ()), from_file)
            raise error(problems, SET if ours else source)
    variables = {path: tuple(names) for path, names in interpolator.sources.items()}
    return Config(
        data, file, project_dir, frozenset(secrets), variables, frozenset(overrides or ())
    )


def validate(
    data: Mapping[str, Any], source: str | None = None, manager: PluginManager | None = None
) -> None:
    """Raise :class:`ConfigError` listing every way ``data`` breaks the composed schema.

    ``source`` (a file name) is added to the message.
    """
    from questfoundry.config.model import named_secrets
    from questfoundry.config.validation import Validation

    Validation(_manager(manager, os.environ)).check(data, source, named_secrets(data))


def load_schema(manager: PluginManager | None = None) -> dict[str, Any]:
    """The schema of config.yml for the installed plugins (or ``manager``'s), a fresh copy."""
    from questfoundry.config.schema import compose

    return compose(_manager(manager, os.environ))


def check_backends(config: Config, manager: PluginManager) -> None:
    """Raise :class:`ConfigError` for each backend the config names that nothing registers."""
    from questfoundry.config.files import unquoted_outside
    from questfoundry.config.validation import check_backends as check

    with unquoted_outside(config.path):
        check(config, manager)


def _manager(manager: PluginManager | None, env: Mapping[str, str]) -> PluginManager:
    if manager is not None:
        return manager
    from questfoundry.registry import get_plugin_manager

    return get_plugin_manager(env=env)
