"""benchmarks/studio.py: its bound's arithmetic (quick), and a tiny book through it (soak: each
case is a process of its own with a server of its own, a few seconds)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from questfoundry.contracts.studio import LoopSpec, Step

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "studio.py"
_spec = importlib.util.spec_from_file_location("benchmark_studio", SCRIPT)
assert _spec is not None and _spec.loader is not None
studio = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(studio)


async def nothing(context: object) -> None:
    """A step that does nothing: only the shape of the loop matters here."""


def test_the_chain_is_the_deepest_path_through_the_steps_each_adding_its_own() -> None:
    steps = (
        Step("draft", "plotwright", "", nothing, writes=("topology",)),
        Step("write", "scene_smith", "", nothing, reads=("topology",), writes=("sections",)),
        Step("art", "illustrator", "", nothing, reads=("topology",), writes=("art",)),
        Step("bind", "gatekeeper", "", nothing, reads=("sections", "art"), writes=("book",)),
    )
    roles = ("plotwright", "scene_smith", "illustrator", "gatekeeper")
    loop = LoopSpec("book", roles, steps=steps)
    assert studio.chain(loop, {"draft": 2, "write": 3, "art": 1, "bind": 1}) == 6
    assert studio.chain(loop, {"draft": 2, "write": 1, "art": 4, "bind": 0}) == 6


def test_a_case_is_held_to_calls_times_latency_over_concurrency_plus_the_chain() -> None:
    run = {"calls": 640, "hits": 0, "chain": 5, "wall": 3.0, "cpu": 1.28}
    cached = {"calls": 640, "hits": 640, "chain": 5, "wall": 0.1, "cpu": 0.1}
    case = {"sections": 200, "concurrency": 64, "first": run, "cached": cached, "peak_mb": 90}
    case |= {"sdk_cpu": 0.001, "gateway_cpu": 0.0015}
    rows = {row["operation"]: row for row in studio.case_rows(0.2, case)}
    bound = 640 * 0.2 / 64 + 5 * 0.2  # 3.0 s
    assert rows["200 sections, 200 ms: wall / bound"]["ratio"] == pytest.approx(3.0 / bound)
    assert rows["200 sections, 200 ms: CPU per call / 1.5 ms"]["ratio"] == pytest.approx(2 / 1.5)
    assert rows["200 sections, 200 ms: CPU per call / raw SDK's"]["ratio"] == pytest.approx(2)
    cached_row = rows["200 sections, 200 ms: cached re-run per section / 0.5 ms"]
    assert cached_row["ratio"] == pytest.approx(0.5 / 0.5)
    zero = {row["operation"] for row in studio.case_rows(0.0, case)}
    assert not any("wall / bound" in name for name in zero)  # no latency, no bound to hold


@pytest.mark.soak
def test_a_tiny_book_runs_through_the_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    assert studio.main(["--sizes", "3", "--concurrency", "4"]) == 0
    table = capsys.readouterr().out
    assert "3 sections, 200 ms: wall / bound" in table and "raw SDK" in table
