"""Fixtures shared by the whole-project tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from questfoundry.config import load_config
from questfoundry.registry import get_plugin_manager
from questfoundry.studio import Showrunner
from questfoundry.testing.clock import FakeClock
from questfoundry.testing.fakes import FakeOpenAI

KEY = "sk-stand-in-studio-test"


@pytest.fixture
def stand_in_studio(tmp_path: Path) -> Iterator[tuple[Showrunner, FakeOpenAI]]:
    """A Showrunner over a new project whose text provider is the real OpenAI plugin talking to
    the fake OpenAI server (on the fake clock); and that server, to read its request log."""
    with FakeOpenAI() as server:
        path = tmp_path / ".questfoundry" / "config.yml"
        path.parent.mkdir(parents=True)
        text = {"api_key": KEY, "base_url": server.base_url, "model": "gpt-4o-mini"}
        path.write_text(
            yaml.safe_dump({"providers": {"text": {"default": "openai", "openai": text}}})
        )
        config = load_config(path, env={"OPENAI_API_KEY": KEY})
        with Showrunner.from_config(config, get_plugin_manager(), clock=FakeClock()) as showrunner:
            yield showrunner, server
