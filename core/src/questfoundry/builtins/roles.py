"""Built-in role catalogue, loops and role → provider resolution.

Resolution order: runtime override > ``roles.<role>`` in config > the provider default
(``providers.<kind>.default`` and that provider's own ``model``). The role's kind comes from its
:class:`~questfoundry.contracts.studio.RoleSpec` in the catalogue every plugin contributes to,
unless ``roles.<role>.kind`` says otherwise. Every answer says which layer set each value. The
resolver is registered ``trylast`` so any plugin may route roles differently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from questfoundry.builtins.loops import RUNNABLE
from questfoundry.kit import ConfigError, Kind, LoopSpec, RoleProvider, RoleSpec, hookimpl

OVERRIDE = "override"
CATALOGUE = "role catalogue"
BUILT_IN = "built-in default"

ROLES = (
    RoleSpec("showrunner", "text", "runs the studio: picks loops, wakes roles, merges their work"),
    RoleSpec("gatekeeper", "text", "checks every change against the quality bars before it merges"),
    RoleSpec("plotwright", "text", "designs the topology: hubs, loops, gateways and choices"),
    RoleSpec("scene_smith", "text", "writes and revises the prose of each section"),
    RoleSpec("style_lead", "text", "keeps voice, register and motifs consistent"),
    RoleSpec("lore_weaver", "text", "turns hooks into canon: backstory, causes, timelines"),
    RoleSpec("codex_curator", "text", "writes player-safe codex entries from canon"),
    RoleSpec("researcher", "text", "checks facts and plausibility, cites what it finds"),
    RoleSpec("art_director", "text", "plans illustrations: subjects, shots and captions"),
    RoleSpec("illustrator", "image", "renders the art director's plans into images"),
    RoleSpec("audio_director", "text", "plans cues: ambience, themes and their placement"),
    RoleSpec("audio_producer", "text", "produces the audio director's cues"),
    RoleSpec("translator", "text", "carries the book into another language"),
    RoleSpec("book_binder", "text", "assembles views and exports of the book"),
    RoleSpec("player_narrator", "text", "plays the book through as a reader would, in-world"),
)

#: the loops the core ships, every one with steps (``questfoundry run``)
LOOPS = RUNNABLE


def _kind(role: str, config: Mapping[str, Any], kind: Kind | None) -> tuple[Kind, str]:
    section = (config.get("roles") or {}).get(role) or {}
    if section.get("kind") in ("text", "image"):
        return section["kind"], f"roles.{role}"
    if kind is not None:
        return kind, CATALOGUE
    return "text", BUILT_IN


@hookimpl(trylast=True)
def resolve_role_provider(
    role: str,
    config: Mapping[str, Any],
    override: Mapping[str, Any] | None,
    kind: Kind | None,
    parameters: Sequence[str],
) -> RoleProvider:
    """Runtime override > role config > provider default, each value labelled with its layer."""
    override = override or {}
    kind, kind_source = _kind(role, config, kind)
    section = (config.get("roles") or {}).get(role) or {}
    providers = (config.get("providers") or {}).get(kind) or {}
    role_layer = f"roles.{role}"
    provider, provider_source = _first(
        (override.get("provider"), OVERRIDE),
        (section.get("provider"), role_layer),
        (providers.get("default"), f"providers.{kind}.default"),
    )
    if not provider:
        raise ConfigError(
            f"no provider for role {role!r}: set roles.{role}.provider or providers.{kind}.default",
            path=f"roles.{role}",
        )
    defaults = providers.get(provider) or {}
    provider_layer = f"providers.{kind}.{provider}"
    same_provider = section.get("provider") in (None, provider)
    model, model_source = _first(
        (override.get("model"), OVERRIDE),
        (section.get("model") if same_provider else None, role_layer),
        (defaults.get("model"), provider_layer),
    )
    if not model:
        raise ConfigError(
            f"no model for role {role!r} on provider {provider!r}: set roles.{role}.model "
            f"or providers.{kind}.{provider}.model",
            path=f"roles.{role}",
        )
    params: dict[str, Any] = {}
    sources = {"provider": provider_source, "model": model_source, "kind": kind_source}
    layers = [(defaults, provider_layer), (section if same_provider else {}, role_layer)]
    for values, layer in [*layers, (override, OVERRIDE)]:
        for key in parameters:
            if key in values:
                params[key] = values[key]
                sources[key] = layer
    return RoleProvider(role, provider, model, params, kind, sources)


def _first(*candidates: tuple[Any, str]) -> tuple[Any, str]:
    for value, source in candidates:
        if value:
            return value, source
    return None, ""


@hookimpl
def roles() -> tuple[RoleSpec, ...]:
    return ROLES


@hookimpl
def loops() -> tuple[LoopSpec, ...]:
    return LOOPS
