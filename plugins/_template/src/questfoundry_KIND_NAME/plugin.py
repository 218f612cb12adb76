"""Registers LABEL ``NAME``.

This module is imported whenever plugins are listed, so it imports only the core: the backend and
its third-party library are imported by the factory, when config selects ``NAME``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry import hookimpl
from questfoundry.interfaces import BackendContext, Factory

if TYPE_CHECKING:
    from .backend import Backend


def make_backend(settings: Mapping[str, Any], context: BackendContext) -> Backend:
    """Build the backend from its settings (see the hook's docstring for which config section).

    Check settings here and raise :class:`questfoundry.errors.ConfigError` with the config path for
    a bad or missing value, so the user hears about it at start, not on the first call.
    """
    from .backend import Backend

    return Backend(settings, context)


@hookimpl
def HOOK_NAME() -> Mapping[str, Factory]:
    return {"NAME": make_backend}
