"""What a loop run raises: one line naming the loop, the step and the role, and why."""

from __future__ import annotations

from questfoundry.errors import QuestFoundryError


class LoopError(QuestFoundryError):
    """A loop cannot run: unknown, without steps, missing what it reads, or a step failed."""


class StepError(LoopError):
    """A step failed; the message names the loop, the step, the role and the reason."""

    def __init__(self, loop: str, step: str, role: str, reason: str) -> None:
        self.loop = loop
        self.step = step
        self.role = role
        self.reason = reason
        super().__init__(f"{loop}: step {step} ({role}) failed: {reason}")
