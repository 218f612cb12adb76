"""Real processes started at one instant, for the suites' cross-process exactness tests.

Each child sets itself up (imports, opening its backend), prints ``ready`` and waits; only when
every child is ready does each get ``go``, so the race is run by all of them at once instead of by
whichever finished importing first.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

#: what a racing script runs once it is set up, before it races
READY = 'print("ready", flush=True); sys.stdin.readline()'


def race(script: str, args: Sequence[str], processes: int, cwd: Path | None = None) -> list[str]:
    """Run ``processes`` copies of ``script`` (which must run :data:`READY` before racing) and
    return the last line each printed. Fails the test if any exits with an error."""
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=cwd,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready", "a racer failed while setting up"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        outputs = [child.communicate(timeout=60)[0] for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert [child.returncode for child in children] == [0] * processes
    return [output.strip().rsplit("\n", 1)[-1] for output in outputs]
