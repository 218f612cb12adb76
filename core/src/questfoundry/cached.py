"""Replies as cache values: compact JSON bytes, never pickles, so a poisoned cache runs no code."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from questfoundry.interfaces import Usage

FORMAT = 1


@dataclass(slots=True)
class CachedReply:
    """What the cache keeps of a reply; ``chunks`` are the streamed pieces, when it was streamed."""

    model: str
    text: str | None = None
    image: bytes | None = None
    usage: Usage = Usage()
    cost: Decimal | None = None
    finish_reason: str | None = None
    chunks: tuple[str, ...] | None = None


def encode(reply: CachedReply) -> bytes:
    data: dict[str, Any] = {
        "f": FORMAT,
        "model": reply.model,
        "usage": [
            reply.usage.input_tokens,
            reply.usage.output_tokens,
            reply.usage.cached_input_tokens,
        ],
    }
    if reply.text is not None:
        data["text"] = reply.text
    if reply.image is not None:
        data["image"] = base64.b64encode(reply.image).decode()
    if reply.cost is not None:
        data["cost"] = str(reply.cost)
    if reply.finish_reason:
        data["finish"] = reply.finish_reason
    if reply.chunks is not None:
        data["chunks"] = list(reply.chunks)
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def decode(raw: bytes) -> CachedReply | None:
    """The reply in ``raw``, or None when it is not a cache value of this format (a miss)."""
    try:
        data = json.loads(raw)
        if data.get("f") != FORMAT:
            return None
        image = data.get("image")
        cost = data.get("cost")
        chunks = data.get("chunks")
        return CachedReply(
            model=data["model"],
            text=data.get("text"),
            image=None if image is None else base64.b64decode(image, validate=True),
            usage=Usage(*data["usage"]),
            cost=None if cost is None else Decimal(cost),
            finish_reason=data.get("finish"),
            chunks=None if chunks is None else tuple(chunks),
        )
    except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation):
        return None
