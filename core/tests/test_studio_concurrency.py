"""Where a Showrunner's fan-out bound comes from: the caller, else config.yml, else 16."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from questfoundry.config import Config
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner
from questfoundry.studio.showrunner import DEFAULT_CONCURRENCY


def showrunner(tmp_path: Path, **options: Any) -> Showrunner:
    studio = options.pop("studio", {})
    config = Config({"studio": studio}, None, tmp_path / ".questfoundry", frozenset())
    built = Showrunner.from_config(config, get_plugin_manager(entry_points=False))
    return Showrunner(built.runtime, **options)


def test_the_fan_out_is_sixteen_unless_config_or_the_caller_says(tmp_path: Path) -> None:
    assert DEFAULT_CONCURRENCY == 16
    with showrunner(tmp_path) as plain:
        assert plain.concurrency == 16
    with showrunner(tmp_path, studio={"concurrency": 64}) as configured:
        assert configured.concurrency == 64
    with showrunner(tmp_path, studio={"concurrency": 64}, concurrency=3) as told:
        assert told.concurrency == 3


def test_a_fan_out_below_one_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        showrunner(tmp_path, concurrency=0)
