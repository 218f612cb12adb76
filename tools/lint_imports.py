"""Check the import contracts of pyproject.toml (`[tool.importlinter]`) over the core and every
plugin, without installing them: their ``src`` folders go on ``sys.path`` first.

Run by ``tox -e lint``; ``python tools/lint_imports.py`` works from the repository root too.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def source_folders() -> list[Path]:
    """``core/src`` and every plugin's ``src`` (the template's is not a package)."""
    plugins = sorted(p for p in (ROOT / "plugins").glob("*/src") if p.parent.name != "_template")
    return [ROOT / "core" / "src", *plugins]


def main() -> int:
    sys.path[:0] = [str(folder) for folder in source_folders()]
    from importlinter.cli import lint_imports

    return lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)


if __name__ == "__main__":
    sys.exit(main())
