"""Every script under benchmarks/ and tools/ (and a plugin's benchmarks/) still imports: they use
the core's internals, which move, and nothing else runs them in the quick suite.

One fresh interpreter imports them all, as ``python <script>`` would find its neighbours, and
resolves every QuestFoundry name their functions import later (read with :mod:`ast`), so a
benchmark whose worker imports a moved module fails here, not on the day it is run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: run in the fresh interpreter: argv[1] is the JSON list of scripts; prints what failed
CHECK = """
import ast, importlib, json, sys, traceback
from pathlib import Path

scripts = [Path(p) for p in json.loads(sys.argv[1])]
sys.path[:0] = sorted({str(p.parent) for p in scripts})
failed = {}
for script in scripts:
    name = str(script)
    try:
        importlib.import_module(script.stem)
        for node in ast.walk(ast.parse(script.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                wanted = [(alias.name, None) for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                wanted = [(node.module, alias.name) for alias in node.names]
            else:
                continue
            for module, attribute in wanted:
                if module.split(".")[0].startswith("questfoundry"):
                    found = importlib.import_module(module)
                    if attribute is not None and not hasattr(found, attribute):
                        importlib.import_module(f"{module}.{attribute}")  # a submodule
    except BaseException:
        failed[name] = traceback.format_exc(limit=-1).strip().splitlines()[-1]
print(json.dumps(failed))
"""


def scripts() -> list[Path]:
    folders = [ROOT / "benchmarks", ROOT / "tools", *ROOT.glob("plugins/*/benchmarks")]
    return sorted(path for folder in folders for path in folder.glob("*.py"))


def test_there_are_scripts_to_check() -> None:
    names = {path.name for path in scripts()}
    assert {"gateway.py", "gen_config_docs.py", "store_redis.py"} <= names


@pytest.mark.slow
def test_every_benchmark_and_tool_imports_and_so_do_the_names_its_functions_import() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHECK, json.dumps([str(p) for p in scripts()])],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert failed == {}
