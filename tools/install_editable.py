"""Install the core and every plugin under plugins/ editable, in one pip call.

tox runs this before the tests, so a new plugin folder is tested without editing tox.ini.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def distributions() -> list[Path]:
    plugins = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
    return [ROOT / "core", *(p for p in plugins if not p.name.startswith("_"))]


def main() -> int:
    args = [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    for path in distributions():
        args += ["-e", str(path)]
    return subprocess.call(args)


if __name__ == "__main__":
    sys.exit(main())
