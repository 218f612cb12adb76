"""The runtime: one object that owns every backend a project uses.

Built once from a :class:`~questfoundry.config.Config` and a plugin manager, it builds each backend
the first time something asks for it — cache, limiter, budget keeper, ledger, state store, cost
models, the provider pool — and closes each exactly once. The gateway, every CLI command and the
Showrunner go through it, so nothing builds a second copy of a backend, and a command that never
calls a provider never builds one (nor needs its API key).

The provider pool holds one instance per distinct resolved provider settings: roles whose settings
are equal share one instance and so one connection pool.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from questfoundry.config import Config
from questfoundry.config.rates import fixed_prices_for, rates_from
from questfoundry.config.schema import default_backend
from questfoundry.contracts.backends import BackendContext, Clock
from questfoundry.contracts.protocols import CacheBackend, CostModel, Limiter, Provider, StateStore
from questfoundry.contracts.records import Kind
from questfoundry.contracts.studio import RoleProvider
from questfoundry.gateway.retry import RetryPolicy
from questfoundry.registry import PluginManager

if TYPE_CHECKING:
    from questfoundry.gateway import Gateway
    from questfoundry.gateway.deferred import Deferred
    from questfoundry.ledger import Ledger
    from questfoundry.ledger.budgets import BudgetKeeper

log = logging.getLogger("questfoundry.runtime")

T = TypeVar("T")


class once(Generic[T]):
    """A cached property built at most once even when threads race for it (the runtime's lock).

    Once built the value sits in the instance's ``__dict__``, so reading it costs a dict lookup.
    """

    def __init__(self, build: Callable[[Runtime], T]) -> None:
        self.build = build
        self.name = build.__name__
        self.__doc__ = build.__doc__

    @overload
    def __get__(self, runtime: None, owner: type[Runtime]) -> once[T]: ...

    @overload
    def __get__(self, runtime: Runtime, owner: type[Runtime]) -> T: ...

    def __get__(self, runtime: Runtime | None, owner: type[Runtime]) -> once[T] | T:
        if runtime is None:
            return self
        built = vars(runtime)
        with runtime._lock:
            if self.name not in built:
                if runtime._closed:
                    raise RuntimeError(f"this runtime is closed: it builds no {self.name} now")
                built[self.name] = self.build(runtime)
        return built[self.name]  # type: ignore[no-any-return]


DEFAULT_ROLE = "default"


class Runtime:
    """Every backend of one project, built lazily and closed once.

    Use it as a context manager, or call :meth:`close` (:meth:`aclose` from asyncio).
    """

    def __init__(
        self,
        config: Config,
        manager: PluginManager,
        *,
        clock: Clock | None = None,
        run_id: str | None = None,
    ) -> None:
        self.config = config
        self.manager = manager
        self.clock = clock or Clock()
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.context = BackendContext(config.project_dir, config.namespace, self.clock)
        self.retry = RetryPolicy.from_settings(config.section("retry"))
        self._lock = threading.RLock()
        self._built: list[tuple[str, Callable[[], None]]] = []
        self._providers: dict[str, Provider] = {}
        self._handles: dict[tuple[str, Kind], str] = {}
        self._cost_models: dict[str, CostModel | None] = {}
        self._routes: dict[tuple[str, str | None, str | None], RoleProvider] = {}
        self._closed = False

    # ------------------------------------------------------------------ backends

    def _own(self, name: str, backend: T, close: Callable[[], None]) -> T:
        self._built.append((name, close))
        return backend

    @once
    def cache(self) -> CacheBackend | None:
        """The response cache, or None when ``caching.enabled`` is false."""
        settings = self.config.section("caching")
        if not settings.get("enabled", True):
            return None
        name = self.cache_backend_name
        cache: CacheBackend = self.manager.create("cache backend", name, settings, self.context)
        return self._own("cache", cache, cache.close)

    @once
    def cache_backend_name(self) -> str:
        """``caching.backend``, else the default (``file`` where installed, else ``memory``)."""
        name: str | None = self.config.get("caching.backend")
        return name or default_backend("caching", self.manager)

    @once
    def limiter(self) -> Limiter | None:
        """The rate limiter, or None when no rate is configured (or limits are off)."""
        settings = self.config.section("rate_limiting")
        rates = rates_from(settings)
        if not settings.get("enabled", True) or not rates:
            return None
        name = settings.get("backend") or default_backend("rate_limiting", self.manager)
        limiter: Limiter = self.manager.create(
            "limiter strategy", name, {**settings, "rates": rates}, self.context
        )
        return self._own("limiter", limiter, limiter.close)

    @once
    def ledger(self) -> Ledger:
        """The cost ledger (SQLite in ``.questfoundry/`` by default)."""
        from questfoundry.ledger import open_ledger

        ledger = open_ledger(self.config, self.context)
        return self._own("ledger", ledger, ledger.close)

    @once
    def state(self) -> StateStore:
        """The project's state store (``state.backend``, default ``file``)."""
        from questfoundry.state.manager import checked

        store = checked(self.open_state(), self.manager)  # recovers, refuses a newer schema
        return self._own("state", store, store.close)

    def open_state(self) -> StateStore:
        """A new handle on the state store as it is, unchecked, for the caller to close:
        ``questfoundry state repair`` mends what opening it (:attr:`state`) refuses."""
        settings = self.config.section("state")
        name = settings.get("backend") or default_backend("state", self.manager)
        return self.manager.create("state store", name, settings, self.context)

    @once
    def budgets(self) -> BudgetKeeper | None:
        """The keeper of cost budgets, or None when no budget is configured.

        The ledger is opened first, so what a killed process left in its journal counts before
        this process reserves anything.
        """
        from questfoundry.ledger.budgets import open_budgets

        keeper = open_budgets(self.config, self.ledger, self.context, self.manager)
        return None if keeper is None else self._own("budgets", keeper, keeper.close)

    @once
    def deferred(self) -> Deferred:
        """The gateway's work put off after a reply (a blocking limiter's reconciling); drained
        before any backend closes."""
        from questfoundry.gateway.deferred import Deferred

        return Deferred()

    def ready(self, name: str) -> bool:
        """Whether backend ``name`` is built, so reading it does no I/O."""
        return name in vars(self)

    def cost_model(self, provider: str) -> CostModel | None:
        """Prices from config for ``provider``, else its cost model plugin, else None."""
        if provider not in self._cost_models:
            with self._lock:
                model: CostModel | None = fixed_prices_for(self.config.data, provider)
                if model is None:
                    name = self.config.get(f"pricing.providers.{provider}.cost_model")
                    if name is not None or provider in self.manager.backends("cost model"):
                        settings = self.config.get(f"pricing.providers.{provider}") or {}
                        model = self.manager.create(
                            "cost model", name or provider, settings, self.context
                        )
                self._cost_models[provider] = model
        return self._cost_models[provider]

    # ------------------------------------------------------------------ providers

    def provider_settings(self, name: str, kind: Kind) -> dict[str, Any]:
        """``providers.text.<name>``, with ``providers.image.<name>`` over it for image calls,
        over the defaults of the provider's settings schema: what ``config show`` reports is what
        the provider and the gateway (``timeout_seconds``, each attempt's deadline) use."""
        settings = _schema_defaults(self.manager, name)
        settings.update(self.config.get(f"providers.text.{name}") or {})
        if kind == "image":
            settings.update(self.config.get(f"providers.image.{name}") or {})
        settings["kind"] = kind
        return settings

    def _handle(self, name: str, kind: Kind) -> str:
        """The pool key of ``name`` for ``kind``: equal settings, one instance."""
        handle = self._handles.get((name, kind))
        if handle is None:
            settings = self.provider_settings(name, kind)
            handle = name + "\0" + json.dumps(settings, sort_keys=True, default=str)
            self._handles[(name, kind)] = handle
        return handle

    def pooled(self, name: str, kind: Kind) -> Provider | None:
        """The provider already built for ``name`` and ``kind``, or None (no I/O)."""
        handle = self._handles.get((name, kind))
        return None if handle is None else self._providers.get(handle)

    def provider(self, name: str, kind: Kind = "text") -> Provider:
        """The pooled provider instance for ``name`` and ``kind``, built on first use."""
        handle = self._handle(name, kind)
        found = self._providers.get(handle)
        if found is None:
            with self._lock:
                found = self._providers.get(handle)
                if found is None:
                    if self._closed:
                        raise RuntimeError("this runtime is closed: it builds no provider now")
                    settings = self.provider_settings(name, kind)
                    found = self.manager.create("provider", name, settings, self.context)
                    self._providers[handle] = found
        return found

    def resolve(
        self, role: str | None, provider: str | None = None, model: str | None = None
    ) -> RoleProvider:
        """Which provider, model and parameters ``role`` uses, given runtime overrides."""
        handle = (role or DEFAULT_ROLE, provider, model)
        found = self._routes.get(handle)
        if found is None:
            override = {k: v for k, v in (("provider", provider), ("model", model)) if v}
            found = self.manager.resolve_role(handle[0], self.config.data, override)
            if self.config.overridden:  # name the --set behind each value it gave
                from questfoundry.config.effective import labelled

                found = labelled(found, self.config)
            self._routes[handle] = found
        return found

    @once
    def gateway(self) -> Gateway:
        """The gateway over this runtime's backends."""
        from questfoundry.gateway import Gateway

        return Gateway(self)

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close every provider and backend this runtime built, once, newest first."""
        if self.ready("deferred"):
            self.deferred.drain()
        with self._lock:
            if self._closed:
                return
            self._closed = True
            closers = [(f"provider {key}", p.close) for key, p in self._providers.items()]
            closers += reversed(self._built)
            self._providers.clear()
        for name, close in closers:
            try:
                close()
            except Exception as exc:
                log.warning("closing the %s failed: %s", name, exc)

    async def aclose(self) -> None:
        """:meth:`close`, closing providers' async clients on the running loop first."""
        for provider in list(self._providers.values()):
            try:
                await provider.aclose()
            except Exception as exc:
                log.warning("closing a provider failed: %s", exc)
        self.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _schema_defaults(manager: PluginManager, provider: str) -> dict[str, Any]:
    """The ``default`` of each top-level property of ``provider``'s settings schema."""
    registration = manager.backends("provider").get(provider)
    properties = registration.settings.get("properties", {}) if registration else {}
    return {
        key: value["default"]
        for key, value in properties.items()
        if isinstance(value, dict) and "default" in value
    }


def open_gateway(config: Config, manager: PluginManager, **options: Any) -> Gateway:
    """A gateway with a runtime of its own, closed with it: for a script that needs only the
    gateway. ``options`` go to the :class:`Runtime`."""
    from questfoundry.gateway import Gateway

    return Gateway(Runtime(config, manager, **options), owns_runtime=True)
