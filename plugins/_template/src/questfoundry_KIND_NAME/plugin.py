"""Registers LABEL ``NAME`` and the settings it takes.

This module is imported whenever plugins are listed, so it imports only :mod:`questfoundry.kit`:
the backend and its third-party library are imported by the factory, when config selects ``NAME``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import Backend, BackendContext, hookimpl

if TYPE_CHECKING:
    from .backend import MyBackend

#: the backend's own settings: a JSON Schema fragment, validated where the user writes them
#: (see the hook's docstring for which config section) and listed in the README and the docs
SETTINGS = {
    "properties": {
        "example_setting": {
            "type": "string",
            "minLength": 1,
            "default": "example",
            "description": "Replace with the backend's real settings, each with a description.",
        },
    }
}


def make_backend(settings: Mapping[str, Any], context: BackendContext) -> MyBackend:
    """Build the backend from its settings, already validated against :data:`SETTINGS`.

    Check what the schema cannot say here and raise :class:`questfoundry.kit.ConfigError` with the
    config path, so the user hears about it at start, not on the first call.
    """
    from .backend import MyBackend

    return MyBackend(settings, context)


@hookimpl
def HOOK_NAME() -> Mapping[str, Backend]:
    return {
        "NAME": Backend(
            make_backend,
            settings=SETTINGS,
            capabilities=frozenset(),  # what MyBackend.capabilities declares
            description="one line saying what the backend is",
        )
    }
