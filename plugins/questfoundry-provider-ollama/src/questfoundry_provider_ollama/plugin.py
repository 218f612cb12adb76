"""Registers the provider ``ollama``.

This module is loaded whenever plugins are listed, so it must stay light: the ``ollama`` library
(with httpx and pydantic behind it) is imported by the factory, only when a provider is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry import hookimpl
from questfoundry.interfaces import BackendContext, Factory
from questfoundry_provider_ollama.settings import OllamaSettings

if TYPE_CHECKING:
    from questfoundry_provider_ollama.provider import OllamaProvider


def make_ollama_provider(settings: Mapping[str, Any], context: BackendContext) -> OllamaProvider:
    """Build the provider from ``providers.text.ollama``; Ollama needs no API key."""
    parsed = OllamaSettings.from_mapping(settings)
    from questfoundry_provider_ollama.provider import OllamaProvider

    return OllamaProvider(parsed)


@hookimpl
def providers() -> Mapping[str, Factory]:
    return {"ollama": make_ollama_provider}
