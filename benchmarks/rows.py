"""Rows of a benchmark table: timings in microseconds, ratios against a floor, and the table.

A row is a dict with ``operation`` and any of: ``median_us``, ``p99_us``, ``max_us``, ``calls``,
``per_second`` (timings), ``ratio``, ``target`` and ``added_us`` (a ratio row), ``note`` (free
text), and the fields a benchmark adds to its notes (see :func:`table`). Operations compared with
each other are best timed with :func:`interleaved`; :func:`regressions` lists the ratios above
their targets (``--check``).
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

Row = dict[str, object]


def timed(
    operation: Callable[[], Any], runs: int, warm: int = 50, pace: float = 0.0
) -> list[float]:
    """Microseconds of each of ``runs`` calls after ``warm`` untimed ones, ``pace`` s apart."""
    for _ in range(warm):
        operation()
    taken = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        start = clock()
        operation()
        taken.append((clock() - start) / 1000)
        if pace:
            time.sleep(pace)
    return taken


def interleaved(
    operations: Mapping[str, Callable[[], Any]], runs: int, warm: int = 50
) -> dict[str, list[float]]:
    """Microseconds of each operation, taken in turns (one of each, ``runs`` times) after ``warm``
    untimed turns, so a machine busy with something else slows them all alike."""
    for _ in range(warm):
        for operation in operations.values():
            operation()
    taken: dict[str, list[float]] = {name: [] for name in operations}
    clock = time.perf_counter_ns
    for _ in range(runs):
        for name, operation in operations.items():
            start = clock()
            operation()
            taken[name].append((clock() - start) / 1000)
    return taken


def timed_row(operation: str, samples: list[float]) -> Row:
    """Median, p99 and max of ``samples`` (microseconds), how many, and calls per second."""
    ordered = sorted(samples)
    median = statistics.median(ordered)
    return {
        "operation": operation,
        "median_us": median,
        "p99_us": ordered[max(0, int(len(ordered) * 0.99) - 1)],
        "max_us": ordered[-1],
        "calls": len(ordered),
        "per_second": 1e6 / median,
    }


def ratio_row(operation: str, top: Row, floor: Row, target: float | None = 1.3) -> Row:
    """``top``'s median over ``floor``'s, and the microseconds it adds; ``target`` None: a ratio
    reported, with no target to hold it to."""
    top_us, floor_us = float(top["median_us"]), float(floor["median_us"])  # type: ignore[arg-type]
    return {
        "operation": operation,
        "ratio": top_us / floor_us,
        "added_us": top_us - floor_us,
        "target": target,
    }


def regressions(rows: list[Row]) -> list[str]:
    """One line for each ratio row above its target (what ``--check`` fails on)."""
    return [
        f"{row['operation']}: {row['ratio']:.2f}x, above its target of {row['target']}x"
        for row in rows
        if "ratio" in row and row["target"] is not None and row["ratio"] > row["target"]  # type: ignore[operator]
    ]


def _notes(row: Row) -> str:
    if "ratio" in row:
        added = f", {row['added_us']:+.1f} µs" if "added_us" in row else ""
        target = f" (target <= {row['target']}x)" if row["target"] is not None else ""
        return f"{row['ratio']:.2f}x{target}{added}"
    if "round_trips" in row:
        return f"{row['round_trips']:g} (target {row['target']}): {row['commands']}"
    if "p99_added_ms" in row:
        return (
            f"{row['calls']} calls; p99 added {row['p99_added_ms']:+.2f} ms (target <= 50);"
            f" {row['calls_over_50ms']} over 50 ms"
        )
    if "note" in row:
        return str(row["note"])
    return f"{row['calls']} calls" if "calls" in row else ""


def table(rows: list[Row]) -> str:
    """The rows as a plain-text table."""
    width = max(len(str(row["operation"])) for row in rows)
    columns = (("median_us", "median µs", ".1f"), ("p99_us", "p99 µs", ".1f"),
               ("max_us", "max µs", ".1f"), ("per_second", "per second", ",.0f"))  # fmt: skip
    lines = [f"{'operation':<{width}}" + "".join(f"  {h:>11}" for _, h, _ in columns) + "  notes"]
    for row in rows:
        cells = "".join(
            f"  {format(row[key], spec):>11}" if key in row else " " * 13
            for key, _, spec in columns
        )
        lines.append(f"{row['operation']!s:<{width}}{cells}  {_notes(row)}".rstrip())
    return "\n".join(lines)


def finish(rows: list[Row], check: bool) -> int:
    """Print the table; with ``check``, name each ratio above its target and answer 1 if any."""
    print(table(rows))
    failed = regressions(rows) if check else []
    for line in failed:
        print(f"REGRESSED {line}", file=sys.stderr)
    return 1 if failed else 0
