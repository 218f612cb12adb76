"""Fragments of a secret are masked too (issue 19, item 6), in errors, logs and exports.

Before: only the exact key was masked, so a server echoing the key less its first four
characters put the rest of it into the error line, and an export kept the key less its ``sk-``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from questfoundry.builtins.file_store import FileStore
from questfoundry.cli import cli
from questfoundry.config import Config
from questfoundry.kit.redaction import FRAGMENT, MASK, Fragments, register_secret
from questfoundry.state.exchange import Redactor, export_state
from questfoundry.testing.fakes import FakeOpenAI, RecordedRequest, Response

KEY = "sk-proj-Qm81c4dZe7f0xW93hTqB5nR2"
PRIVATE = KEY[len("sk-proj-") :]


class EchoingServer(FakeOpenAI):
    """Refuses every key, quoting it less its first four characters, as a careless proxy does."""

    def _authorised(self, handler: Any) -> Any:
        def refuse(request: RecordedRequest) -> Response:
            sent = request.headers.get("authorization", "")[len("Bearer ") :]
            return self.error_response(401, f"Incorrect API key provided: ...{sent[4:]}")

        return refuse


@pytest.fixture
def server() -> Iterator[EchoingServer]:
    with EchoingServer() as fake:
        yield fake


def test_an_error_echoing_the_key_less_its_first_characters_is_masked(
    tmp_path: Path, server: EchoingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / ".questfoundry" / "config.yml"
    config.parent.mkdir()
    config.write_text(
        "providers:\n  text:\n    default: openai\n    openai:\n"
        f"      base_url: {server.base_url}\n      api_key: ${{QF_FRAGMENT_KEY}}\n"
        "      model: gpt-4o-mini\n"
        "retry: {max_retries: 0}\ncaching: {backend: memory}\n"
    )
    monkeypatch.setenv("QF_FRAGMENT_KEY", KEY)
    result = CliRunner().invoke(cli, ["--config", str(config), "ask", "hello"])
    assert result.exit_code == 1
    assert "Incorrect API key provided" in result.stderr  # the line is there, the key is not
    assert PRIVATE[:FRAGMENT] not in result.stderr and PRIVATE[-FRAGMENT:] not in result.stderr


def test_an_export_never_holds_the_key_less_its_public_prefix(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.set("book/notes", {"pasted": f"the key was {KEY[3:]}; the tail {PRIVATE[-9:]}"})
    config = Config({"providers": {"text": {"openai": {"api_key": KEY}}}})
    out = tmp_path / "out.json"
    result = export_state(store, out, redactor=Redactor.for_config(config))
    text = out.read_text()
    assert PRIVATE[:FRAGMENT] not in text and PRIVATE[-FRAGMENT:] not in text
    assert "the key was proj-***; the tail ***" in text
    assert result.masked == 1


@pytest.mark.parametrize("start", range(len(PRIVATE) - FRAGMENT + 1))
def test_every_run_of_eight_characters_is_masked_wherever_it_starts(start: int) -> None:
    fragments = Fragments([KEY])
    piece = PRIVATE[start : start + FRAGMENT]
    assert fragments.mask(f"a{piece}b") == f"a{MASK}b"


def test_shorter_runs_and_the_public_prefix_are_left_alone() -> None:
    fragments = Fragments([KEY])
    text = f"sk-proj- and {PRIVATE[: FRAGMENT - 1]} stay"
    assert fragments.mask(text) == text


def test_a_long_run_is_one_mask_and_separate_runs_are_two() -> None:
    fragments = Fragments([KEY])
    assert fragments.mask(f"<{PRIVATE[2:20]}>") == f"<{MASK}>"
    assert fragments.mask(f"{PRIVATE[:9]} and {PRIVATE[-9:]}") == f"{MASK} and {MASK}"


def test_log_records_holding_a_fragment_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("questfoundry.fragment_test")
    register_secret(KEY)  # puts the filter on every questfoundry logger there is
    with caplog.at_level(logging.WARNING, logger="questfoundry"):
        logger.warning("server said %s", PRIVATE[3:])
    assert PRIVATE[3:] not in caplog.text and MASK in caplog.text


def test_a_fragment_in_the_middle_of_a_megabyte_is_found() -> None:
    # how long it takes: benchmarks/reliability.py (about 25 ms a megabyte here)
    prose = "the storm rolled over the lighthouse and its keeper watched the sea " * 15_000
    text = prose[:500_000] + PRIVATE[5:21] + prose[500_000:1_000_000]
    fragments = Fragments([KEY, "sk-" + PRIVATE[::-1], "AIza" + PRIVATE.upper()])
    assert fragments.mask(text) == text[:500_000] + MASK + text[500_016:]
