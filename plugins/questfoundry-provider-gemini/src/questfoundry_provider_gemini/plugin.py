"""Registers the provider ``gemini``.

This module is loaded whenever plugins are listed, so it must stay light: ``google.genai`` (with
pydantic, httpx2 and google-auth behind it) is imported by the factory, only when a provider is
built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry import hookimpl
from questfoundry.interfaces import BackendContext, Factory
from questfoundry_provider_gemini.settings import GeminiSettings

if TYPE_CHECKING:
    from questfoundry_provider_gemini.provider import GeminiProvider


def make_gemini_provider(settings: Mapping[str, Any], context: BackendContext) -> GeminiProvider:
    """Build the provider from ``providers.text.gemini``; a missing key fails here, not later."""
    parsed = GeminiSettings.from_mapping(settings)
    from questfoundry_provider_gemini.provider import GeminiProvider

    return GeminiProvider(parsed)


@hookimpl
def providers() -> Mapping[str, Factory]:
    return {"gemini": make_gemini_provider}
