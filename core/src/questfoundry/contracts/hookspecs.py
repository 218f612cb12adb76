# mypy: disable-error-code="empty-body"
"""The hooks a QuestFoundry plugin may implement.

A plugin is a module (or object) with functions decorated by :data:`hookimpl` whose names are the
hooks below, published under the entry-point group ``questfoundry``::

    # pyproject.toml
    [project.entry-points.questfoundry]
    cache-sqlite = "questfoundry_cache_sqlite.plugin"

    # questfoundry_cache_sqlite/plugin.py
    from questfoundry.kit import Backend, hookimpl

    @hookimpl
    def cache_backends():
        return {"sqlite": Backend(make_sqlite_cache, settings=SETTINGS, description="...")}

The core's own built-ins (``questfoundry.builtins``) register through these same hooks.

Backend hooks return ``{name: registration}``: a :class:`~questfoundry.kit.Backend`
(factory, JSON Schema fragment of its settings, capabilities, one-line description) or, for the
simplest plugins, the bare factory. Every factory is called as ``factory(settings, context)`` with
``settings`` the plain mapping from config.yml for that backend, already validated against the
schema the core composes from every registered fragment, and ``context`` a
:class:`~questfoundry.kit.BackendContext`; it returns an object satisfying the
matching protocol in :mod:`questfoundry.contracts.protocols`. Import your backend's third-party
library inside the factory, not at module level: plugins are loaded to list them, and listing must
stay fast.

A plugin that breaks a rule — a name another plugin registered first, a hook name not below, a
duplicate role, a loop over unknown roles, a hook that raises — is disabled with one warning
naming it; the rest of QuestFoundry keeps working.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from questfoundry.contracts.backends import Backend, Factory
    from questfoundry.contracts.records import CallEvent, Kind, Migration
    from questfoundry.contracts.studio import LoopSpec, RoleProvider, RoleSpec

PROJECT_NAME = "questfoundry"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def cache_backends() -> Mapping[str, Backend | Factory]:
    """Register response-cache backends, selected by ``caching.backend``.

    :returns: ``{name: Backend or factory}``; each factory returns a
        :class:`~questfoundry.kit.CacheBackend`. Its settings are the whole
        ``caching`` section: the core's keys (``enabled``, ``backend``, ``ttl_seconds``,
        ``per_provider``) and the backend's own, declared in its fragment and written beside them.
    """


@hookspec
def limiter_strategies() -> Mapping[str, Backend | Factory]:
    """Register rate-limiter strategies, selected by ``rate_limiting.backend``.

    :returns: ``{name: Backend or factory}``; each factory returns a
        :class:`~questfoundry.kit.Limiter`. Its settings are the ``rate_limiting``
        section (its fragment's keys included) plus ``rates``: the list of
        :class:`~questfoundry.kit.Rate` the limiter enforces.
    """


@hookspec
def budget_keepers() -> Mapping[str, Backend | Factory]:
    """Register cost-budget keepers, selected by ``rate_limiting.backend`` like the limiter.

    :returns: ``{name: Backend or factory}``; each factory returns a
        :class:`~questfoundry.kit.BudgetKeeper`. Its settings are the
        ``rate_limiting`` section plus ``budgets``: the list of
        :class:`~questfoundry.kit.Budget` it enforces (never empty), ``ledger_path`` (the cost
        ledger's file) and ``timezone``. Its keys are declared by the limiter strategy of the same
        name, which shares the section. Where no keeper has the backend's name, the installed one
        of highest ``priority`` keeps them (the core's ``sqlite``, in the ledger's file). The
        ledger records every paid call either way and hands the call's hold to the keeper's
        ``settle`` before its ``record`` returns.
    """


@hookspec
def cost_models() -> Mapping[str, Backend | Factory]:
    """Register cost models, selected per provider by ``pricing.providers.<provider>.cost_model``
    (default: the cost model named like the provider).

    :returns: ``{name: Backend or factory}``; each factory returns a
        :class:`~questfoundry.kit.CostModel`. Its settings are
        ``pricing.providers.<provider>``, where its fragment's keys are written.
        A cost model must not fetch prices over the network at run time.
    """


@hookspec
def state_stores() -> Mapping[str, Backend | Factory]:
    """Register project-state stores, selected by ``state.backend``.

    :returns: ``{name: Backend or factory}``; each factory returns a
        :class:`~questfoundry.kit.StateStore`. Its settings are the ``state``
        section, its fragment's keys written beside ``backend``.
    """


@hookspec
def providers() -> Mapping[str, Backend | Factory]:
    """Register LLM providers, referred to by name in ``providers`` and ``roles``.

    :returns: ``{name: Backend or factory}``; each factory returns a
        :class:`~questfoundry.kit.Provider`. Its settings are
        ``providers.text.<name>``, with ``providers.image.<name>`` laid over it for image roles,
        plus ``kind`` (``"text"`` or ``"image"``); the core owns ``model`` and the generation
        defaults there, the fragment declares the rest (``api_key``, ``base_url``, …). A missing API
        key must raise :class:`~questfoundry.kit.ConfigError` from the factory, naming
        the config path.
    """


@hookspec(firstresult=True)
def resolve_role_provider(
    role: str,
    config: Mapping[str, Any],
    override: Mapping[str, Any] | None,
    kind: Kind | None,
    parameters: Sequence[str],
) -> RoleProvider | None:
    """Decide which provider, model and parameters ``role`` uses.

    :param role: the role's name, e.g. ``"scene_smith"``.
    :param config: the whole validated configuration as a plain mapping (a value whose
        environment variable is unset is a :class:`~questfoundry.config.Unresolved`).
    :param override: runtime overrides (``provider``, ``model``, parameters) or None.
    :param kind: the role's kind in the catalogue (``text`` or ``image``), or None for a role the
        catalogue does not have; ``roles.<role>.kind`` in ``config`` may say otherwise.
    :param parameters: the names of the generation parameters a role or provider section may set:
        :data:`~questfoundry.kit.GENERATION_PARAMETERS` and those installed providers declare.
    :returns: a :class:`~questfoundry.kit.RoleProvider`, or None to let the next
        implementation decide. Its ``kind`` routes the call (None: ``kind``, else text), its
        ``sources`` name the layer that set each field. The first non-None answer wins; the
        built-in one (runtime override > ``roles.<role>`` > ``providers.<kind>.default`` and that
        provider's settings) runs last.
    """


@hookspec
def roles() -> Sequence[RoleSpec]:
    """Contribute roles to the studio's catalogue.

    :returns: a list of :class:`~questfoundry.kit.RoleSpec`. The catalogue is built from
        this hook alone; a spec's ``kind`` routes the role (``roles.<name>.kind`` overrides it).
        Names must be unique across plugins: a later duplicate disables its plugin. The core
        contributes QuestFoundry's own roles.
    """


@hookspec
def loops() -> Sequence[LoopSpec]:
    """Contribute loops: named sets of roles and the steps the Showrunner runs with them.

    :returns: a list of :class:`~questfoundry.kit.LoopSpec` naming only roles of the
        catalogue; a loop naming another disables its plugin. Its ``steps``
        (:class:`~questfoundry.kit.Step`) each name a role of the loop, its
        instructions, the artifacts it reads and writes, and an async ``run(context)`` given a
        :class:`~questfoundry.kit.StepContext`; steps whose reads are ready run concurrently.
        A loop without steps is listed but cannot run. See docs/studio.md.
    """


@hookspec
def state_migrations() -> Sequence[Migration]:
    """Contribute the migrations of the state documents your plugin keeps.

    :returns: a list of :class:`~questfoundry.kit.Migration`, all with ``scope`` set to
        your distribution's name (the core's own scope ``questfoundry`` is refused). Each scope's
        versions number ``1, 2, 3…`` with no gap; version ``n``'s ``upgrade`` takes the whole
        state (every document by key) from ``n - 1`` to ``n`` and its ``downgrade`` back, as pure
        functions that are exact inverses; raise
        :class:`~questfoundry.kit.MigrationError` for a state you cannot convert. The
        :class:`~questfoundry.state.manager.MigrationManager` runs them (``questfoundry state
        migrate``) after a backup, all-or-nothing; a store whose recorded version of your scope is
        newer than your latest migration is refused.
    """


@hookspec
def call_completed(event: CallEvent) -> None:
    """Observe every gateway call once it ends: cache hit or miss, tokens, cost, latency, waits.

    :param event: a :class:`~questfoundry.kit.CallEvent`. ``event.outcome`` says how the call
        ended (:class:`~questfoundry.kit.Outcome`: ``hit``, ``miss``, ``coalesced``,
        ``error``, ``stream_finished``, ``stream_failed``, ``stream_abandoned``); ``event.reply`` is
        None and ``event.error`` set when it failed. Called exactly once per call, sync or async, on
        the caller's thread (for asyncio, in the caller's task); keep it quick and free of blocking
        I/O, and do not raise: an observer's exception is logged and ignored.
    """
