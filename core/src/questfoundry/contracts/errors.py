"""Every error QuestFoundry raises on purpose.

One family, so a caller can catch ``QuestFoundryError`` and show its message as one line::

    QuestFoundryError
    ├── ConfigError                    bad config.yml (``path`` says where inside it)
    ├── PluginError                    a plugin misbehaves
    │   ├── PluginNotFoundError        a backend name nothing registers
    │   └── DuplicatePluginError       two plugins register the same name
    ├── BackendUnavailableError        a backend's service is down (Redis gone, disk unreadable)
    ├── RateLimitError                 a limit is reached (``retry_after`` seconds until it frees)
    ├── CostLimitExceededError         a cost budget would be exceeded; never waited for
    ├── ProviderError                  the provider failed the call
    │   ├── RetriableProviderError     network, timeout, 5xx: worth trying again
    │   │   └── ProviderRateLimitError 429 from the provider (``retry_after`` from the response)
    │   └── NonRetriableProviderError  400/401/403/404 and the like: fails at once
    ├── StateError                     project state cannot be read or written
    │   └── MigrationError             a state migration failed or is missing
    ├── LedgerError                    the cost ledger cannot be read or written
    └── LoopError                      a studio loop cannot run (unknown, no steps, …)
        └── StepError                  one of its steps failed (loop, step, role and why)

Backends wrap their library's own exceptions into these (``redis.ConnectionError`` becomes
``BackendUnavailableError``) so callers never import a backend's library to handle its errors.
"""

from __future__ import annotations

from collections.abc import Sequence


class QuestFoundryError(Exception):
    """Base of every error QuestFoundry raises on purpose; its message is one line for a user."""


class ConfigError(QuestFoundryError):
    """The configuration is invalid; ``path`` is the dotted location inside config.yml."""

    def __init__(self, message: str, *, path: str = "", source: str | None = None) -> None:
        self.path = path
        self.source = source
        where = f"{path}: " if path else ""
        origin = f" (in {source})" if source else ""
        super().__init__(f"{where}{message}{origin}")


class PluginError(QuestFoundryError):
    """A plugin failed to load or registered something invalid."""


class PluginNotFoundError(PluginError):
    """A backend name no enabled plugin registers; ``disabled``: the broken plugin that would."""

    def __init__(
        self,
        kind: str,
        name: str,
        installed: Sequence[str],
        distribution: str | None = None,
        suggestion: str | None = None,
        disabled: str | None = None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.installed = list(installed)
        self.distribution = distribution
        self.disabled = disabled
        listing = ", ".join(sorted(installed)) or "none"
        message = f"{kind} {name!r} is not installed (installed: {listing})"
        if disabled:
            message = f"{kind} {name!r} is provided by {disabled}, which is disabled"
        if suggestion:
            message += f"; did you mean {suggestion!r}?"
        if distribution:
            message += f"; pip install {distribution}"
        super().__init__(message)


class DuplicatePluginError(PluginError):
    """Two plugins registered the same name for the same kind of backend."""


class BackendUnavailableError(QuestFoundryError):
    """A backend's service or storage cannot be reached."""


class RateLimitError(QuestFoundryError):
    """A rate limit is reached; ``retry_after`` is the seconds until it would admit the call."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        self.retry_after = retry_after
        super().__init__(f"{message} (retry after {retry_after:.2f}s)")


class CostLimitExceededError(QuestFoundryError):
    """Sending the request would exceed a cost budget; raised before anything is sent."""


class ProviderError(QuestFoundryError):
    """The provider failed the call; ``request_id`` is the service's id of the failed request."""

    retriable: bool = False

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.provider = provider
        self.status_code = status_code
        self.request_id = request_id
        prefix = f"{provider}: " if provider else ""
        status = f" (HTTP {status_code})" if status_code else ""
        super().__init__(f"{prefix}{message}{status}")


class RetriableProviderError(ProviderError):
    """A failure worth retrying: network error, timeout, 5xx."""

    retriable = True


class ProviderRateLimitError(RetriableProviderError):
    """The provider answered 429; ``retry_after`` comes from its response when it gave one."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        status_code: int | None = 429,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, provider=provider, status_code=status_code, request_id=request_id)


class NonRetriableProviderError(ProviderError):
    """A failure that retrying cannot fix: bad request, bad key, no such model."""


class StateError(QuestFoundryError):
    """Project state cannot be read or written."""


class MigrationError(StateError):
    """A state migration failed, or no path of migrations leads to the wanted version."""


class LedgerError(QuestFoundryError):
    """The cost ledger cannot be read or written."""


class LoopError(QuestFoundryError):
    """A loop cannot run: unknown, without steps, missing what it reads, or a step failed."""


class StepError(LoopError):
    """A step failed; the message names the loop, the step, the role and the reason."""

    def __init__(self, loop: str, step: str, role: str, reason: str) -> None:
        self.loop = loop
        self.step = step
        self.role = role
        self.reason = reason
        super().__init__(f"{loop}: step {step} ({role}) failed: {reason}")
