"""Start-up cost: wall time of fresh interpreters, medians over several runs, in one run.

    python benchmarks/startup.py [--runs N]

Measures ``python -c "import questfoundry"``, ``questfoundry --help`` and ``questfoundry plugins``
beside ``python -c "pass"`` and ``python -c "import openai"`` (for scale).
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

CASES = [
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ("python -c 'import questfoundry'", [sys.executable, "-c", "import questfoundry"]),
    ("python -c 'import openai'", [sys.executable, "-c", "import openai"]),
    ("questfoundry --help", [shutil.which("questfoundry") or "questfoundry", "--help"]),
    ("questfoundry plugins", [shutil.which("questfoundry") or "questfoundry", "plugins", "--json"]),
]


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command (default 15)")
    args = parser.parse_args()
    print(f"{'command':<34} {'median ms':>10} {'min ms':>8}")
    for label, command in CASES:
        wall(command)  # warm the file cache
        samples = [wall(command) for _ in range(args.runs)]
        print(f"{label:<34} {statistics.median(samples):>10.1f} {min(samples):>8.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
