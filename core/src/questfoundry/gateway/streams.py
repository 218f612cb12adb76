"""Streamed calls: the two drivers that hand the pipeline's text to the caller as it arrives.

Each is a few lines over :meth:`Pipeline.stream <questfoundry.gateway.pipeline.Pipeline.stream>`:
effects are carried out as in :func:`~questfoundry.gateway.effects.drive`, and each
:class:`~questfoundry.gateway.effects.Emit` is yielded to the caller. A caller that stops reading
(``break``, ``close()``, garbage collection) throws :class:`Abandoned` into the steps, which record
what was spent and never cache the partial reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from questfoundry.calls import Reply
from questfoundry.gateway.effects import Emit, Steps, adrive, drive
from questfoundry.gateway.pipeline import Abandoned


class Stream:
    """A streamed call: iterate for text; ``reply`` is set once the stream has ended."""

    def __init__(self, steps: Steps[Reply]) -> None:
        self._steps = steps
        self.reply: Reply | None = None

    def __iter__(self) -> Iterator[str]:
        steps, value, error = self._steps, None, None
        while True:
            try:
                effect = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration as stop:
                self.reply = stop.value
                return
            value, error = None, None
            if isinstance(effect, Emit):
                try:
                    yield effect.text
                except GeneratorExit:
                    self.reply = drive(steps, Abandoned())
                    raise
                continue
            try:
                value = effect.run()
            except BaseException as exc:
                error = exc


class AsyncStream:
    """The asyncio face of :class:`Stream`: ``async for text in gateway.astream(request)``."""

    def __init__(self, steps: Steps[Reply]) -> None:
        self._steps = steps
        self.reply: Reply | None = None

    async def __aiter__(self) -> AsyncIterator[str]:
        steps: Steps[Reply] = self._steps
        value: Any = None
        error: BaseException | None = None
        while True:
            try:
                effect = steps.throw(error) if error is not None else steps.send(value)
            except StopIteration as stop:
                self.reply = stop.value
                return
            value, error = None, None
            if isinstance(effect, Emit):
                try:
                    yield effect.text
                except GeneratorExit:
                    self.reply = await adrive(steps, Abandoned())
                    raise
                continue
            try:
                value = await effect.arun()
            except BaseException as exc:
                error = exc
