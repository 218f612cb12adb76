"""State export at scale: time and memory of ``questfoundry state export`` over the file store.

    python benchmarks/state_scale.py [--documents 10000 100000] [--dir /tmp/qf-state-bench]

For each size a file store of that many ~1 KB documents is built once (kept in ``--dir`` and
reused: the files are written directly, in the store's own format, since a hundred thousand
fsynced writes would take minutes), then exported to JSON the way the command does (every string
redacted) in a fresh process, which reports the time and its peak resident memory above what it
held before the export began. The export streams, so the growth should be the key list only
(under 100 bytes a key), not the documents.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

TEXT = "The lantern room smelt of brass polish and old rain. " * 18


def build(root: Path, documents: int) -> None:
    """A file store in ``root`` holding ``documents`` documents (written once, then kept)."""
    root.mkdir(parents=True, exist_ok=True)
    have = sum(1 for p in root.iterdir() if p.name.startswith("book"))
    for index in range(have, documents):
        key = f"book/sections/{index:07d}"
        body = {"id": index, "text": TEXT, "choices": [index + 1, index + 2]}
        (root / (quote(key, safe="") + ".json")).write_text(json.dumps(body, sort_keys=True))


def child(root: Path, out: Path) -> None:
    """Export ``root`` to ``out``; print seconds, documents and peak RSS growth (MB) as JSON."""
    from questfoundry.builtins.file_store import FileStore
    from questfoundry.state.exchange import Redactor, export_state

    store = FileStore(root)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = export_state(store, out, redactor=Redactor())
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {"seconds": seconds, "documents": result.documents, "rss_mb": (after - before) / 1024}
        )
    )


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/qf-state-bench"))
    parser.add_argument("--child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(*args.child)
        return
    print(f"{'documents':>10} {'export s':>9} {'docs/s':>8} {'file MB':>8} {'peak RSS +MB':>13}")
    for documents in args.documents:
        root = args.dir / f"state-{documents}"
        build(root, documents)
        out = args.dir / f"export-{documents}.json"
        run = subprocess.run(
            [sys.executable, __file__, "--child", str(root), str(out)],
            check=True,
            capture_output=True,
            text=True,
        )
        figures = json.loads(run.stdout)
        rate = figures["documents"] / figures["seconds"]
        size = out.stat().st_size / 2**20
        print(
            f"{figures['documents']:>10} {figures['seconds']:>9.2f} {rate:>8.0f} {size:>8.1f} "
            f"{figures['rss_mb']:>13.1f}"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
