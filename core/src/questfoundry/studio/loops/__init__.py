"""The loops the core ships with steps: ``story_spark``, ``art_touch_up``, ``binding_run``."""

from __future__ import annotations

from questfoundry.studio.loops.art_touch_up import ART_TOUCH_UP
from questfoundry.studio.loops.binding_run import BINDING_RUN
from questfoundry.studio.loops.story_spark import STORY_SPARK

__all__ = ["ART_TOUCH_UP", "BINDING_RUN", "RUNNABLE", "STORY_SPARK"]

RUNNABLE = (STORY_SPARK, ART_TOUCH_UP, BINDING_RUN)
