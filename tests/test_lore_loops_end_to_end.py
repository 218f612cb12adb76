"""The lore loops on the stand-in: the real OpenAI plugin and SDK over HTTP to the fake server.

The fake answers every structured request with an arbitrary valid instance of its schema, so
this proves the loops cope with nonsense: after ``story_spark``, ``hook_harvest``,
``lore_deepening`` and ``codex_expansion`` each run, a repeated run reaches no server, the canon
is in the prompts of the sections it concerns (the fake's request log), and ``binding_run``
binds a book whose links all work, with the codex printed as its appendix. What each loop
saved keeps its meaning checks: hooks named once, naming real sections, each triaged with a
reason; canon of the shape every prompt reads; codex entries with a term and a text.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from questfoundry.kit import CanonEntry, CodexEntry, Topology
from questfoundry.studio import Showrunner
from questfoundry.testing.fakes import FakeOpenAI

SECTIONS = 6


@pytest.mark.slow
def test_the_lore_loops_run_on_the_stand_in_and_the_book_binds_with_its_codex(
    stand_in_studio: tuple[Showrunner, FakeOpenAI],
) -> None:
    showrunner, server = stand_in_studio
    showrunner.run("story_spark", sections=SECTIONS)
    for loop in ("hook_harvest", "lore_deepening", "codex_expansion"):
        first = showrunner.run(loop, sections=SECTIONS)
        paid = len(server.requests)
        again = showrunner.run(loop, sections=SECTIONS)
        assert first.totals.provider_calls > 0 and first.totals.cost > 0, loop
        assert len(server.requests) == paid, f"{loop} asked the server again"
        assert again.totals.cost == 0 and again.totals.cache_hits == first.totals.calls

    state = showrunner.runtime.state
    ids = set(Topology.from_dict(state.get("book/topology") or {}).ids)
    hooks = (state.get("book/hooks") or {})["hooks"]
    assert len({h["id"] for h in hooks}) == len(hooks)  # none twice
    for hook in hooks:
        assert hook["sections"] and set(hook["sections"]) <= ids
        assert hook["triage"] in ("keep", "drop", "later") and hook["reason"].strip()
    canon = {key: state.get(key) or {} for key in state.list_keys("book/canon/")}
    for entry in canon.values():
        assert set(CanonEntry.from_dict(entry).sections) <= ids  # the shape prompts read
    codex = state.list_keys("book/codex/")
    assert canon and len(codex) == len(canon)
    for key in codex:
        assert CodexEntry.from_dict(key.rsplit("/", 1)[1], state.get(key) or {}).text
    curated = [r.body["messages"][-1]["content"] for r in server.requests if _named(r, "codex")]
    for entry in canon.values():
        assert any(f"The canon: {entry['name']} ({entry['kind']}): " in p for p in curated)

    ident = next(iter(canon.values()))["sections"][0]
    before = len(server.requests)
    showrunner.run("revision", sections=SECTIONS, options={"section": ident, "notes": "Darker."})
    rewrite = server.requests[before].body["messages"][-1]["content"]
    concerning = [e for e in canon.values() if ident in e["sections"]]
    assert all(f"- {e['name']}: {e['fact']}" in rewrite for e in concerning)

    bound = showrunner.run("binding_run", sections=SECTIONS)
    page = Path(bound.outputs["html"]).read_text(encoding="utf-8")
    ids, links = set(re.findall(r' id="([^"]+)"', page)), re.findall(r' href="#([^"]*)"', page)
    assert links and set(links) <= ids  # every link lands on the page
    assert {f"codex-{key.rsplit('/', 1)[1]}" for key in codex} | {"codex-title"} <= ids


def _named(request: object, name: str) -> bool:
    schema = (getattr(request, "body", None) or {}).get("response_format") or {}
    return bool(schema.get("json_schema", {}).get("name") == name)
