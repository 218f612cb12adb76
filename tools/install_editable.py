"""Install the core and every plugin under plugins/ editable, in one installer call.

tox runs this before the tests, so a new plugin folder is tested without editing tox.ini. It uses
uv when it is on PATH (tox-uv's environments have no pip, and uv builds the editables in parallel
from its cache), else this interpreter's pip.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def distributions() -> list[Path]:
    plugins = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").is_file())
    return [ROOT / "core", *(p for p in plugins if not p.name.startswith("_"))]


def installer() -> list[str]:
    uv = shutil.which("uv")
    if uv is None:
        return [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    return [uv, "pip", "install", "--quiet", "--python", sys.executable]


def main() -> int:
    args = installer()
    for path in distributions():
        args += ["-e", str(path)]
    return subprocess.call(args)


if __name__ == "__main__":
    sys.exit(main())
