"""Kills state writers with SIGKILL at chosen moments; run as a script by the crash tests.

One short-lived, single-threaded process forks each victim, so a hundred kills cost a hundred
forks rather than a hundred interpreters (and the test process itself never forks).

    python state_crash_driver.py writes STORE TIMES SEED
        TIMES times: fork a writer looping over ``set`` of a few keys, let it write for a
        random few milliseconds, SIGKILL it.
    python state_crash_driver.py migrate TEMPLATE WORK TARGET STEPS...
        for each STEP n: copy the store TEMPLATE to WORK/n, fork a child migrating it to
        TARGET (the core's scope) that SIGKILLs itself as its n-th step completes.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from questfoundry.builtins.file_store import FileStore
from questfoundry.state.backup import BackupPolicy
from questfoundry.state.manager import MigrationManager

KEYS = ("book/a", "book/b", "runs/c")


def written(writer: int, i: int) -> dict[str, Any]:
    """The document writer ``writer`` writes ``i``-th: any whole value is one of these."""
    return {"writer": writer, "i": i, "pad": "x" * ((writer * 7919 + i * 104729) % 20000)}


def _fork(child: Any) -> int:
    pid = os.fork()
    if pid == 0:  # the child never returns into the driver
        try:
            child()
        finally:
            os._exit(0)
    return pid


def writes(store: Path, times: int, seed: int) -> None:
    rng = random.Random(seed)
    for writer in range(times):
        ready_r, ready_w = os.pipe()

        def loop(writer: int = writer, ready: int = ready_w) -> None:
            files = FileStore(store)
            for i in range(1_000_000):
                files.set(KEYS[i % len(KEYS)], written(writer, i))
                if i == 0:
                    os.write(ready, b".")

        pid = _fork(loop)
        os.close(ready_w)
        os.read(ready_r, 1)  # it has written once: now kill it somewhere in what follows
        os.close(ready_r)
        time.sleep(rng.uniform(0, 0.004))  # the moment of the kill is the point: random
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)


def migrate(template: Path, work: Path, target: int, steps: list[int]) -> None:
    for n in steps:
        root = work / str(n)
        shutil.copytree(template, root)

        def run(root: Path = root, n: int = n) -> None:
            done = 0

            def step(name: str) -> None:
                nonlocal done
                done += 1
                if done == n:
                    os.kill(os.getpid(), signal.SIGKILL)

            manager = MigrationManager(FileStore(root / "state"), backups=BackupPolicy(root / "b"))
            manager.migrate({"questfoundry": target}, step=step)

        os.waitpid(_fork(run), 0)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "writes":
        writes(Path(args[0]), int(args[1]), int(args[2]))
    else:
        migrate(Path(args[0]), Path(args[1]), int(args[2]), [int(a) for a in args[3:]])
