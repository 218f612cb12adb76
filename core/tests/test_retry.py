"""Retry-After parsing and the retry policy: every wait bounded, odd values fall back to backoff."""

from __future__ import annotations

import pytest

from questfoundry.contracts.errors import (
    NonRetriableProviderError,
    ProviderRateLimitError,
    RateLimitError,
    RetriableProviderError,
)
from questfoundry.gateway.retry import RetryPolicy
from questfoundry.kit.retry_after import parse_retry_after

NOW = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 1.5 ", 1.5),
        ("Thu, 01 Jan 2026 00:01:00 GMT", 60.0),
        ("0", None),  # "now": back off rather than hammer the server
        ("-3", None),
        ("inf", None),
        ("Infinity", None),
        ("nan", None),
        ("1e400", None),
        ("Wed, 31 Dec 2025 23:00:00 GMT", None),  # already past
        ("soon", None),
        ("", None),
        (None, None),
        ("Mon, 99 Foo 2026 25:61:61 GMT", None),
    ],
)
def test_retry_after_values_are_parsed_safely(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


def test_a_date_far_ahead_is_read_as_the_long_wait_it_asks_for() -> None:
    seconds = parse_retry_after("Thu, 01 Jan 2099 00:00:00 GMT", now=NOW)
    assert seconds is not None and seconds > 2_000_000_000


def test_a_retry_after_longer_than_max_delay_raises_at_once_with_it() -> None:
    policy = RetryPolicy(max_delay=30.0)
    error = ProviderRateLimitError("slow down", provider="openai", retry_after=86_400)
    with pytest.raises(RateLimitError) as caught:
        policy.delay(error, retry=0, remaining=600.0)
    assert caught.value.retry_after == 86_400
    assert "openai" in str(caught.value)


def test_a_retry_after_past_the_calls_deadline_raises_at_once() -> None:
    error = ProviderRateLimitError("slow down", retry_after=20)
    with pytest.raises(RateLimitError):
        RetryPolicy(max_delay=30.0).delay(error, retry=0, remaining=10.0)


def test_a_retry_after_within_the_budget_is_the_delay() -> None:
    error = ProviderRateLimitError("slow down", retry_after=7)
    assert RetryPolicy().delay(error, retry=0, remaining=600.0) == 7


def test_without_a_retry_after_the_delay_is_full_jitter_under_the_doubling_ceiling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("random.uniform", lambda low, high: high)  # the ceiling itself
    policy = RetryPolicy(initial_delay=0.5, max_delay=3.0)
    error = RetriableProviderError("503")
    assert [policy.delay(error, retry=n, remaining=600.0) for n in range(3)] == [0.5, 1.0, 2.0]
    assert (
        RetryPolicy(initial_delay=0.5, max_delay=3.0, max_retries=9).delay(
            error, retry=5, remaining=600.0
        )
        == 3.0
    )


def test_a_backoff_that_would_pass_the_deadline_gives_up_with_the_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("random.uniform", lambda low, high: high)
    error = RetriableProviderError("503")
    with pytest.raises(RetriableProviderError):
        RetryPolicy(initial_delay=2.0).delay(error, retry=0, remaining=1.0)


def test_non_retriable_errors_and_the_last_attempt_are_not_retried() -> None:
    policy = RetryPolicy(max_retries=2)
    with pytest.raises(NonRetriableProviderError):
        policy.delay(NonRetriableProviderError("bad key"), retry=0, remaining=600.0)
    with pytest.raises(RetriableProviderError):
        policy.delay(RetriableProviderError("503"), retry=2, remaining=600.0)  # third attempt


def test_the_retry_section_sets_the_policy() -> None:
    policy = RetryPolicy.from_settings(
        {"max_retries": 5, "initial_delay_ms": 100, "max_delay_ms": 2000, "deadline_seconds": 30}
    )
    assert (policy.attempts, policy.initial_delay, policy.max_delay, policy.deadline) == (
        6,
        0.1,
        2.0,
        30.0,
    )
    assert RetryPolicy.from_settings({"enabled": False}).attempts == 1
