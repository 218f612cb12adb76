"""Registers provider ``openai``. The openai SDK is imported by the factory, not here, so listing
plugins stays fast."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry import hookimpl
from questfoundry.interfaces import BackendContext, Capability
from questfoundry.plugins import Backend
from questfoundry_provider_openai.settings import OpenAISettings

if TYPE_CHECKING:
    from questfoundry_provider_openai.provider import OpenAIProvider


#: the settings of ``providers.<kind>.openai``, validated where the user writes them
SETTINGS = {
    "properties": {
        "api_key": {
            "type": "string",
            "description": (
                "API key; write `${OPENAI_API_KEY}` rather than the key itself (default: that "
                "variable). Never logged, cached or exported."
            ),
        },
        "base_url": {
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9+.-]*://\\S+$",
            "examples": ["http://localhost:8000/v1"],
            "description": "Endpoint to call instead of the service's default.",
        },
        "organization": {
            "type": "string",
            "description": "Organization id sent with each request.",
        },
        "timeout_seconds": {
            "type": "number",
            "exclusiveMinimum": 0,
            "default": 60,
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


def make_openai_provider(settings: Mapping[str, Any], context: BackendContext) -> OpenAIProvider:
    """Build the provider from ``providers.text.openai``; a missing API key fails here, at start."""
    parsed = OpenAISettings.from_mapping(settings)
    from questfoundry_provider_openai.provider import OpenAIProvider

    return OpenAIProvider(parsed)


@hookimpl
def providers() -> Mapping[str, Backend]:
    return {
        "openai": Backend(
            make_openai_provider,
            settings=SETTINGS,
            capabilities=frozenset({Capability.STREAMING, Capability.IMAGES}),
            description="OpenAI chat, streaming and images; any OpenAI-compatible base_url",
        )
    }
