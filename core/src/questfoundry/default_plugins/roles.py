"""Built-in role catalogue, loops and role → provider resolution.

Resolution order: runtime override > ``roles.<role>`` in config > the provider default
(``providers.<kind>.default`` and that provider's own ``model``). Registered ``trylast`` so any
plugin may route roles differently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from questfoundry.errors import ConfigError
from questfoundry.hookspecs import hookimpl
from questfoundry.interfaces import Kind, LoopSpec, RoleProvider, RoleSpec

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

LOOPS = (
    LoopSpec("story_spark", ("plotwright", "scene_smith", "gatekeeper"), "seed new topology"),
    LoopSpec("hook_harvest", ("showrunner", "lore_weaver", "gatekeeper"), "triage new hooks"),
    LoopSpec("lore_deepening", ("lore_weaver", "researcher", "gatekeeper"), "hooks into canon"),
    LoopSpec("codex_expansion", ("codex_curator", "gatekeeper"), "canon into codex entries"),
    LoopSpec("style_tune_up", ("style_lead", "scene_smith", "gatekeeper"), "tighten the voice"),
    LoopSpec("art_touch_up", ("art_director", "illustrator", "gatekeeper"), "plan and make art"),
    LoopSpec(
        "audio_pass", ("audio_director", "audio_producer", "gatekeeper"), "plan and make cues"
    ),
    LoopSpec("translation_pass", ("translator", "gatekeeper"), "translate the book"),
    LoopSpec("binding_run", ("book_binder", "gatekeeper"), "export a view of the book"),
    LoopSpec("narration_dry_run", ("player_narrator", "gatekeeper"), "play it as a reader"),
)

#: keys of a role or provider section that are generation parameters
PARAMETER_KEYS = ("temperature", "max_tokens", "top_p", "stop", "seed", "size", "quality")

_KINDS = {spec.name: spec.kind for spec in ROLES}


def role_kind(role: str, config: Mapping[str, Any]) -> Kind:
    """``roles.<role>.kind`` if set, else the catalogue's kind, else text."""
    section = (config.get("roles") or {}).get(role) or {}
    kind = section.get("kind") or _KINDS.get(role, "text")
    return "image" if kind == "image" else "text"


def resolve(
    role: str, config: Mapping[str, Any], override: Mapping[str, Any] | None
) -> RoleProvider:
    """Runtime override > role config > provider default."""
    override = override or {}
    kind = role_kind(role, config)
    section = (config.get("roles") or {}).get(role) or {}
    providers = (config.get("providers") or {}).get(kind) or {}
    provider = override.get("provider") or section.get("provider") or providers.get("default")
    if not provider:
        raise ConfigError(
            f"no provider for role {role!r}: set roles.{role}.provider or providers.{kind}.default",
            path=f"roles.{role}",
        )
    defaults = providers.get(provider) or {}
    same_provider = section.get("provider") in (None, provider)
    model = (
        override.get("model")
        or (section.get("model") if same_provider else None)
        or defaults.get("model")
    )
    if not model:
        raise ConfigError(
            f"no model for role {role!r} on provider {provider!r}: set roles.{role}.model "
            f"or providers.{kind}.{provider}.model",
            path=f"roles.{role}",
        )
    params: dict[str, Any] = {k: defaults[k] for k in PARAMETER_KEYS if k in defaults}
    if same_provider:
        params.update({k: section[k] for k in PARAMETER_KEYS if k in section})
    params.update({k: override[k] for k in PARAMETER_KEYS if k in override})
    return RoleProvider(role, provider, model, params)


@hookimpl(trylast=True)
def resolve_role_provider(
    role: str, config: Mapping[str, Any], override: Mapping[str, Any] | None
) -> RoleProvider:
    return resolve(role, config, override)


@hookimpl
def roles() -> tuple[RoleSpec, ...]:
    return ROLES


@hookimpl
def loops() -> tuple[LoopSpec, ...]:
    return LOOPS
