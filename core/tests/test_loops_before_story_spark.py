"""The loops that work on a book fail in one line when there is none yet."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from lore_studio import SECTIONS

from questfoundry.studio import Showrunner, StepError


@pytest.mark.parametrize(
    "loop", ["style_tune_up", "narration_dry_run", "translation_pass", "audio_pass"]
)
def test_each_loop_before_story_spark_fails_in_one_line(
    studio: Callable[..., Showrunner], loop: str
) -> None:
    options = {"language": "de"} if loop == "translation_pass" else {}
    with pytest.raises(StepError, match=r"has no topology yet: run story_spark first$"):
        studio(spark=False).run(loop, sections=SECTIONS, options=options)
