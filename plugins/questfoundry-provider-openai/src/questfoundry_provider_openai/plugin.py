"""Registers provider ``openai``. The openai SDK is imported by the factory, not here, so listing
plugins stays fast."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from questfoundry.kit import (
    Backend,
    BackendContext,
    Capability,
    ProviderSetup,
    hookimpl,
    http_settings_schema,
)
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
        "organization": {
            "type": "string",
            "description": "Organization id sent with each request.",
        },
        **http_settings_schema(timeout_default=60, url_example="http://localhost:8000/v1"),
    }
}


def make_openai_provider(settings: Mapping[str, Any], context: BackendContext) -> OpenAIProvider:
    """Build the provider from ``providers.text.openai``; a missing API key fails here, at start."""
    parsed = OpenAISettings.from_mapping(settings)
    from questfoundry_provider_openai.provider import OpenAIProvider

    return OpenAIProvider(parsed)


def offer_openai(env: Mapping[str, str], base_url: str | None, asked: bool) -> ProviderSetup | None:
    """What ``questfoundry init`` writes when OPENAI_API_KEY is set (or ``--provider openai``)."""
    if not (env.get("OPENAI_API_KEY") or asked):
        return None
    endpoint = f"\nbase_url: {base_url}" if base_url else ""
    return ProviderSetup(
        reason="OpenAI, with the key in OPENAI_API_KEY",
        text=(
            "api_key: ${OPENAI_API_KEY}  # read from the environment; never write the key here\n"
            f"model: gpt-4o-mini{endpoint}"
        ),
        image="model: gpt-image-1",
        needs=("OPENAI_API_KEY",),
    )


@hookimpl
def providers() -> Mapping[str, Backend]:
    return {
        "openai": Backend(
            make_openai_provider,
            settings=SETTINGS,
            capabilities=frozenset({Capability.STREAMING, Capability.IMAGES}),
            description="OpenAI chat, streaming and images; any OpenAI-compatible base_url",
            priority=30,  # the order `questfoundry init` offers providers
            setup=offer_openai,
        )
    }
