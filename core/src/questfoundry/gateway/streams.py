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

from questfoundry.contracts.records import Reply
from questfoundry.gateway.effects import Emit, Steps, adrive, drive
from questfoundry.gateway.pipeline import Abandoned


class _Once:
    """A stream's steps, handed out once: a stream is read once."""

    def __init__(self, steps: Steps[Reply]) -> None:
        self._steps: Steps[Reply] | None = steps
        self.reply: Reply | None = None

    def _take(self) -> Steps[Reply]:
        steps, self._steps = self._steps, None
        if steps is None:
            raise RuntimeError("this stream has been read already; ask the gateway again")
        return steps


class Stream(_Once):
    """A streamed call: iterate for text; ``reply`` is set once the stream has ended."""

    def __iter__(self) -> Iterator[str]:
        steps = self._take()
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
                    self.reply = drive(steps, Abandoned())
                    raise
                continue
            try:
                value = effect.run()
            except BaseException as exc:
                error = exc


class AsyncStream(_Once):
    """The asyncio face of :class:`Stream`: ``async for text in gateway.astream(request)``."""

    async def __aiter__(self) -> AsyncIterator[str]:
        steps = self._take()
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
