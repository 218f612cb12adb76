"""The loops the core ships: ``story_spark``, ``art_touch_up``, ``binding_run`` and ``revision``
(one section rewritten from the author's notes); the lore loops ``hook_harvest``,
``lore_deepening`` and ``codex_expansion``; ``style_tune_up``, ``narration_dry_run`` (a
playtest), ``translation_pass`` and ``audio_pass`` (a cue sheet)."""

from __future__ import annotations

from questfoundry.builtins.loops.art_touch_up import ART_TOUCH_UP
from questfoundry.builtins.loops.audio_pass import AUDIO_PASS
from questfoundry.builtins.loops.binding_run import BINDING_RUN
from questfoundry.builtins.loops.codex_expansion import CODEX_EXPANSION
from questfoundry.builtins.loops.hook_harvest import HOOK_HARVEST
from questfoundry.builtins.loops.lore_deepening import LORE_DEEPENING
from questfoundry.builtins.loops.narration_dry_run import NARRATION_DRY_RUN
from questfoundry.builtins.loops.revision import REVISION
from questfoundry.builtins.loops.story_spark import STORY_SPARK
from questfoundry.builtins.loops.style_tune_up import STYLE_TUNE_UP
from questfoundry.builtins.loops.translation_pass import TRANSLATION_PASS

__all__ = [
    "ART_TOUCH_UP",
    "AUDIO_PASS",
    "BINDING_RUN",
    "CODEX_EXPANSION",
    "HOOK_HARVEST",
    "LORE_DEEPENING",
    "NARRATION_DRY_RUN",
    "REVISION",
    "RUNNABLE",
    "STORY_SPARK",
    "STYLE_TUNE_UP",
    "TRANSLATION_PASS",
]

RUNNABLE = (
    STORY_SPARK,
    ART_TOUCH_UP,
    BINDING_RUN,
    REVISION,
    HOOK_HARVEST,
    LORE_DEEPENING,
    CODEX_EXPANSION,
    STYLE_TUNE_UP,
    NARRATION_DRY_RUN,
    TRANSLATION_PASS,
    AUDIO_PASS,
)
