"""Registers the provider ``ollama``.

This module is loaded whenever plugins are listed, so it must stay light: the ``ollama`` library
(with httpx and pydantic behind it) is imported by the factory, only when a provider is built.
"""

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
from questfoundry_provider_ollama.settings import OllamaSettings

if TYPE_CHECKING:
    from questfoundry_provider_ollama.provider import OllamaProvider


#: the settings of ``providers.<kind>.ollama``, validated where the user writes them
SETTINGS = {
    "properties": {
        **http_settings_schema(
            timeout_default=300,
            url_example="http://localhost:11434",
            url_default="http://localhost:11434",
        ),
    }
}


def make_ollama_provider(settings: Mapping[str, Any], context: BackendContext) -> OllamaProvider:
    """Build the provider from ``providers.text.ollama``; Ollama needs no API key."""
    parsed = OllamaSettings.from_mapping(settings)
    from questfoundry_provider_ollama.provider import OllamaProvider

    return OllamaProvider(parsed)


#: how long a local Ollama has to answer before ``questfoundry init`` decides there is none
PROBE_SECONDS = 1.0
OLLAMA_PORT = 11434


def offer_ollama(env: Mapping[str, str], base_url: str | None, asked: bool) -> ProviderSetup | None:
    """What ``questfoundry init`` writes for an Ollama answering at ``base_url`` (else where
    ``OLLAMA_HOST`` says) within :data:`PROBE_SECONDS`, with the first model it has; or for
    ``--provider ollama`` even when none answers."""
    host = base_url or ollama_url(env)
    models = probe_ollama(host)
    if models is None and not asked:
        return None
    model = (models or ["llama3.2"])[0]
    return ProviderSetup(
        reason=f"the Ollama at {host}",
        text=f"base_url: {host}\nmodel: {model}  # any model you have pulled (`ollama list`)",
    )


def ollama_url(env: Mapping[str, str]) -> str:
    """Where Ollama listens: ``OLLAMA_HOST`` as Ollama reads it (``host``, ``host:port`` or a
    URL; ``0.0.0.0`` means this machine), else 127.0.0.1:11434."""
    from urllib.parse import urlsplit

    value = env.get("OLLAMA_HOST", "").strip() or "127.0.0.1"
    parts = urlsplit(value if "://" in value else f"http://{value}")
    host = parts.hostname or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}:{parts.port or OLLAMA_PORT}"


def probe_ollama(url: str) -> list[str] | None:
    """The models of the Ollama answering at ``url``, or None when nothing answers in time.

    Asked directly: an HTTP proxy in the environment is not the machine's Ollama.
    """
    import json
    import urllib.request

    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with direct.open(f"{url}/api/tags", timeout=PROBE_SECONDS) as response:
            tags = json.loads(response.read(1 << 20))
    except (OSError, ValueError):
        return None
    models = tags.get("models") if isinstance(tags, dict) else None
    if not isinstance(models, list):
        return None
    return [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]


@hookimpl
def providers() -> Mapping[str, Backend]:
    return {
        "ollama": Backend(
            make_ollama_provider,
            settings=SETTINGS,
            capabilities=frozenset({Capability.STREAMING}),
            description="models served by a local Ollama",
            priority=10,  # the order `questfoundry init` offers providers: after the keys
            setup=offer_ollama,
        )
    }
