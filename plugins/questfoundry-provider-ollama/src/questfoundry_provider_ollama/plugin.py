"""Registers the provider ``ollama``.

This module is loaded whenever plugins are listed, so it must stay light: the ``ollama`` library
(with httpx and pydantic behind it) is imported by the factory, only when a provider is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry import hookimpl
from questfoundry.interfaces import BackendContext, Capability
from questfoundry.plugins import Backend
from questfoundry_provider_ollama.settings import OllamaSettings

if TYPE_CHECKING:
    from questfoundry_provider_ollama.provider import OllamaProvider


#: the settings of ``providers.<kind>.ollama``, validated where the user writes them
SETTINGS = {
    "properties": {
        "base_url": {
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9+.-]*://\\S+$",
            "examples": ["http://localhost:11434"],
            "default": "http://localhost:11434",
            "description": "Endpoint to call instead of the service's default.",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 300,
            "description": (
                "Seconds one attempt may take from sending the request to the last byte of the "
                "reply (a deadline, not a per-read timeout); past it the attempt fails as "
                "retriable."
            ),
        },
        "max_reply_mb": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 32,
            "description": (
                "Largest reply body accepted, in MiB; a larger one fails the call instead of "
                "filling memory."
            ),
        },
    }
}


def make_ollama_provider(settings: Mapping[str, Any], context: BackendContext) -> OllamaProvider:
    """Build the provider from ``providers.text.ollama``; Ollama needs no API key."""
    parsed = OllamaSettings.from_mapping(settings)
    from questfoundry_provider_ollama.provider import OllamaProvider

    return OllamaProvider(parsed)


@hookimpl
def providers() -> Mapping[str, Backend]:
    return {
        "ollama": Backend(
            make_ollama_provider,
            settings=SETTINGS,
            capabilities=frozenset({Capability.STREAMING}),
            description="models served by a local Ollama",
        )
    }
