"""The loops the core ships with steps: ``story_spark``, ``art_touch_up``, ``binding_run``."""

from __future__ import annotations

from questfoundry.builtins.loops.art_touch_up import ART_TOUCH_UP
from questfoundry.builtins.loops.binding_run import BINDING_RUN
from questfoundry.builtins.loops.story_spark import STORY_SPARK

__all__ = ["ART_TOUCH_UP", "BINDING_RUN", "RUNNABLE", "STORY_SPARK"]

RUNNABLE = (STORY_SPARK, ART_TOUCH_UP, BINDING_RUN)
