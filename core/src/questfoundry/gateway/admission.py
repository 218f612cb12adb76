"""What a call is admitted on before it is sent: its estimated tokens, and what it takes from the
limiter's buckets."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from questfoundry.contracts.records import Message, Usage

#: output tokens assumed when a request sets no max_tokens
DEFAULT_OUTPUT_ESTIMATE = 1024
CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


def estimate_usage(
    messages: Iterable[Message], prompt: str | None, params: Mapping[str, Any]
) -> Usage:
    """A deliberately generous guess of a call's tokens, made without a tokenizer download.

    Input: about four characters a token plus a few tokens of framing per message. Output: the
    request's ``max_tokens``, or :data:`DEFAULT_OUTPUT_ESTIMATE`. Reconciled with the real usage
    once the provider answers.
    """
    chars = len(prompt or "")
    count = 0
    for message in messages:
        chars += len(message.content)
        count += 1
    input_tokens = chars // CHARS_PER_TOKEN + 1 + TOKENS_PER_MESSAGE * count
    output_tokens = int(params.get("max_tokens") or DEFAULT_OUTPUT_ESTIMATE)
    return Usage(input_tokens, output_tokens)


def admission(provider: str, tokens: int) -> dict[str, float]:
    """What one attempt takes from the buckets: one request and its estimated tokens, twice."""
    return {
        "global/requests": 1.0,
        "global/tokens": float(tokens),
        f"provider:{provider}/requests": 1.0,
        f"provider:{provider}/tokens": float(tokens),
    }
