"""Every installed provider gets the ``timeout_seconds`` that ``config show`` reports for it, set
or not: the schema default is the deadline of one attempt, not the whole call's deadline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from questfoundry.config import Config
from questfoundry.config.effective import effective
from questfoundry.registry import get_plugin_manager
from questfoundry.runtime import Runtime


def test_every_installed_provider_gets_the_timeout_config_show_reports(tmp_path: Path) -> None:
    manager = get_plugin_manager(env={})
    names = sorted(manager.backends("provider"))
    if not names:
        pytest.skip("no provider plugin is installed")
    data: dict[str, Any] = {"providers": {"text": {name: {} for name in names}}}
    config = Config(data, None, tmp_path / ".questfoundry", frozenset())
    shown, _ = effective(config, manager)
    with Runtime(config, manager) as runtime:
        for name in names:
            given = runtime.provider_settings(name, "text").get("timeout_seconds")
            assert given is not None, name
            assert given == shown["providers"]["text"][name]["timeout_seconds"], name
