"""Replies as cache values: compact JSON bytes, never pickles, so a poisoned cache runs no code."""

from __future__ import annotations

import base64
import json
from decimal import Decimal, InvalidOperation
from time import perf_counter
from typing import Any

from questfoundry.contracts.records import Reply, Usage

FORMAT = 1
ZERO = Decimal(0)


def encode(reply: Reply) -> bytes:
    """What the cache keeps of ``reply``: model, text or image, usage, cost, finish, chunks."""
    usage = reply.usage
    data: dict[str, Any] = {
        "f": FORMAT,
        "model": reply.model,
        "usage": [usage.input_tokens, usage.output_tokens, usage.cached_input_tokens],
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


def decode(raw: bytes, provider: str) -> Reply | None:
    """The cache hit in ``raw`` (cost 0, ``saved`` the original cost), or None when it is not a
    cache value of this format: a broken entry is a miss."""
    try:
        data = json.loads(raw)
        if data.get("f") != FORMAT:
            return None
        image = data.get("image")
        cost = data.get("cost")
        chunks = data.get("chunks")
        text = data.get("text")
        if chunks is not None:
            chunks = tuple(str(piece) for piece in chunks)
            text = "".join(chunks) if text is None else text
        return Reply(
            provider=provider,
            model=str(data["model"]),
            text=text,
            image=None if image is None else base64.b64decode(image, validate=True),
            usage=Usage(*data["usage"]),
            cost=ZERO,
            saved=None if cost is None else Decimal(cost),
            cache_hit=True,
            finish_reason=data.get("finish"),
            chunks=chunks,
        )
    except (ValueError, TypeError, KeyError, AttributeError, InvalidOperation):
        return None


class HitDecoder:
    """:func:`decode` for the hit path, parsing each value once while it stays hot.

    The last ``size`` values decoded are remembered by their bytes (up to ``largest`` bytes each):
    a memory cache hands back the very object it stored, whose hash Python keeps, so a repeated
    hit costs a dict lookup instead of a JSON parse. Every call returns a new :class:`Reply`,
    made once with the caller's fields.
    """

    def __init__(self, size: int = 512, largest: int = 64 * 1024) -> None:
        self.size = size
        self.largest = largest
        self._seen: dict[bytes, Reply] = {}

    def __call__(
        self, raw: bytes, provider: str, role: str | None, key: str, run_id: str, started: float
    ) -> Reply | None:
        """The hit in ``raw`` for ``role`` under ``key``, its latency counted from ``started``
        (a :func:`~time.perf_counter` reading); None when ``raw`` is no cache value."""
        seen = self._seen.get(raw) if len(raw) <= self.largest else None
        if seen is None:
            seen = decode(raw, provider)
            if seen is None:
                return None
            if len(raw) <= self.largest:
                if len(self._seen) >= self.size:
                    self._seen.clear()
                self._seen[bytes(raw)] = seen
        return Reply(
            provider,
            seen.model,
            seen.text,
            seen.image,
            seen.usage,
            ZERO,
            seen.saved,
            cache_hit=True,
            latency=perf_counter() - started,
            role=role,
            key=key,
            run_id=run_id,
            finish_reason=seen.finish_reason,
            chunks=seen.chunks,
        )
