"""The ``providers.text.ollama`` settings, checked before anything is sent.

Kept apart from the client so a bad setting is a :class:`~questfoundry.kit.ConfigError`
naming its config path, raised when the provider is built rather than on the first call.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from questfoundry.kit import DEFAULT_MAX_REPLY_BYTES, ConfigError, max_reply_bytes

CONFIG_PATH = "providers.text.ollama"
DEFAULT_BASE_URL = "http://localhost:11434"
#: local models may need to load into memory before the first token: be generous
DEFAULT_TIMEOUT_SECONDS = 300.0


@dataclass(frozen=True)
class OllamaSettings:
    """Where Ollama listens, the default model, how long one attempt may take, the largest reply."""

    base_url: str = DEFAULT_BASE_URL
    model: str | None = None
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> OllamaSettings:
        """Read the settings; None or a missing key means the default."""
        base_url = settings.get("base_url") or DEFAULT_BASE_URL
        if not isinstance(base_url, str):
            raise ConfigError("must be a URL string", path=f"{CONFIG_PATH}.base_url")
        model = settings.get("model")
        if model is not None and (not isinstance(model, str) or not model):
            raise ConfigError("must be a non-empty model name", path=f"{CONFIG_PATH}.model")
        timeout = settings.get("timeout_seconds")
        if timeout is None:
            timeout = DEFAULT_TIMEOUT_SECONDS
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError(
                f"{timeout!r} is not a positive number of seconds",
                path=f"{CONFIG_PATH}.timeout_seconds",
            )
        return cls(
            base_url=base_url.rstrip("/"),
            model=model,
            timeout_seconds=float(timeout),
            max_reply_bytes=max_reply_bytes(settings, CONFIG_PATH),
        )
