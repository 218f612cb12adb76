"""Secrets stay out of messages, log records and tracebacks (:mod:`questfoundry.kit.redaction`)."""

from __future__ import annotations

import logging

import pytest

from questfoundry.kit import redaction

KEY = "sk-rdx-7f3a9c1e5b-40d2e8"  # random-like: its 8-character runs appear in no path


@pytest.fixture(autouse=True)
def registered() -> None:
    redaction.register_secret(KEY)


@pytest.mark.parametrize(
    "text",
    [
        f"Authorization: Bearer {KEY}",
        f"{{'authorization': 'Bearer {KEY}'}}",
        f"the key {KEY} was refused",
        "x-goog-api-key: AIzaSyD-0123456789abcdefghijklmnopqrstu",
        'headers={"api-key": "azure-secret-value-123"}',
        "Bearer eyJhbGciOiJIUzI1NiJ9.payload.signature",
    ],
)
def test_credentials_and_registered_keys_are_masked(text: str) -> None:
    masked = redaction.redact(text)
    assert "***" in masked
    for secret in (KEY, "AIzaSyD-0123456789", "azure-secret-value", "eyJhbGci"):
        assert secret not in masked


def test_ordinary_text_is_left_alone() -> None:
    text = "The lighthouse keeper's ledger: 3 ships, 12 bearers of bad news."
    assert redaction.redact(text) == text


def test_short_values_are_not_registered_as_secrets() -> None:
    redaction.register_secret("abc")
    assert redaction.redact("abc abc") == "abc abc"


def test_a_child_loggers_record_is_masked_before_any_handler_sees_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("questfoundry.gateway.redaction_test")
    redaction.install()
    try:
        raise RuntimeError(f"server said: Authorization: Bearer {KEY}")
    except RuntimeError:
        with caplog.at_level(logging.INFO, logger="questfoundry"):
            logger.exception("call failed with key %s", KEY)
    [record] = [r for r in caplog.records if r.name == logger.name]
    assert KEY not in record.getMessage()
    assert record.exc_info is None, "the raw exception leaves the record once it held a key"
    assert record.exc_text is not None and "RuntimeError" in record.exc_text
    assert caplog.text.count(KEY) == 0


def test_a_record_without_secrets_keeps_its_exception(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("questfoundry.redaction_clean_test")
    redaction.install()
    try:
        raise ValueError("nothing secret")
    except ValueError:
        with caplog.at_level(logging.INFO, logger="questfoundry"):
            logger.exception("plain failure")
    [record] = [r for r in caplog.records if r.name == logger.name]
    assert record.exc_info is not None


def test_format_exception_masks_every_link_of_the_chain() -> None:
    try:
        try:
            raise ConnectionError(f"echoed Authorization: Bearer {KEY}")
        except ConnectionError as inner:
            raise RuntimeError("call failed") from inner
    except RuntimeError as error:
        shown = redaction.format_exception(error)
    assert "ConnectionError" in shown and "RuntimeError" in shown
    assert shown.count(KEY) == 0
