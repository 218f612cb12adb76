"""What the gateway needs of the runtime that owns its backends, as a protocol.

The gateway sits below the runtime: it is handed a :class:`Backends` (the runtime is one), builds
none of them and never imports the runtime module, so the layers run one way only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from questfoundry.config import Config
    from questfoundry.contracts.backends import BackendContext, Clock
    from questfoundry.contracts.protocols import (
        BudgetKeeper,
        CacheBackend,
        CostModel,
        Limiter,
        Provider,
    )
    from questfoundry.contracts.records import Kind
    from questfoundry.contracts.studio import RoleProvider
    from questfoundry.gateway.deferred import Deferred
    from questfoundry.gateway.retry import RetryPolicy
    from questfoundry.ledger import Ledger
    from questfoundry.registry import PluginManager


class Backends(Protocol):
    """Every backend of one project, each built on first use (see ``questfoundry.runtime``)."""

    config: Config
    manager: PluginManager
    clock: Clock
    context: BackendContext
    run_id: str
    retry: RetryPolicy

    @property
    def cache(self) -> CacheBackend | None: ...

    @property
    def limiter(self) -> Limiter | None: ...

    @property
    def ledger(self) -> Ledger: ...

    @property
    def budgets(self) -> BudgetKeeper | None: ...

    @property
    def deferred(self) -> Deferred: ...

    def ready(self, name: str) -> bool:
        """Whether the backend ``name`` is built already (reading it would not build it)."""

    def cost_model(self, provider: str) -> CostModel | None: ...

    def provider_settings(self, name: str, kind: Kind) -> dict[str, Any]: ...

    def pooled(self, name: str, kind: Kind) -> Provider | None: ...

    def provider(self, name: str, kind: Kind = "text") -> Provider: ...

    def resolve(
        self, role: str | None, provider: str | None = None, model: str | None = None
    ) -> RoleProvider: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...
