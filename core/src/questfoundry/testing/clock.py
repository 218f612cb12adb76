"""A clock that only moves when told to, so tests never sleep."""

from __future__ import annotations

from questfoundry.contracts.backends import Clock


class FakeClock(Clock):
    """``sleep`` and ``asleep`` advance the clock instantly; ``slept`` records each call."""

    def __init__(self, start: float = 1_000_000.0, wall: float = 1_767_225_600.0) -> None:
        self.now = start
        self.wall_offset = wall - start
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now + self.wall_offset

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)
