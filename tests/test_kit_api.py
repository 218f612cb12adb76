"""The kit's names are the plugins' stable API (docs/plugins.md): this test freezes them, so the
list changes only on purpose.

A change to the kit changes three things together: ``API_VERSION`` (a name added raises the
minor version; one removed, or changed so that a plugin could break, raises the major), the table
in docs/plugins.md, and the list below.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from questfoundry import kit

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
CHANGE = "the kit changed: update API_VERSION, docs/plugins.md and this test together"

API_VERSION = "4.0"
NAMES = """
    API_VERSION AUDIO AUTHOR BRIEF Backend BackendContext BackendUnavailableError Book Brief
    BucketLevel Budget BudgetKeeper BudgetLevel CANON CODEX CacheBackend CacheMode CacheStats
    CallEvent CanonEntry Capability Choice Chunk Clock CodexEntry ConfigError
    CostLimitExceededError CostModel Cue CueSheet DEFAULT_MAX_REPLY_BYTES DEFAULT_SECTIONS
    DailyPrices DeadlineExceeded DuplicatePluginError EXPORT FOLDER FORMATS FRONT_MATTER Factory
    Figures Fix FixedPrices FlightLocking GENERATION_PARAMETERS GenaiPrices Hold IMAGES
    INTERNAL_KEY_PREFIX Kind Labels LeaseHolder Leasing LedgerError Limiter LoopError LoopOption
    LoopSpec MASK MAX_SECTIONS Message Migration MigrationError NonRetriableProviderError Offer
    Outcome Part PerLoop Period Picture PluginError PluginNotFoundError Provider ProviderError
    ProviderRateLimitError ProviderReply ProviderRequest ProviderSetup QuestFoundryError
    RESPONSE_SCHEMA RUN Rate RateLimitError RedisSettings Reply ReplyTooLarge Request
    RetriableProviderError RoleProvider RoleSpec SECTIONS SHOTS STYLE Section Shape ShapeError
    Snapshot StateError StateStore Step StepContext StepError StyleGuide TEXT TOPOLOGY
    TRANSLATIONS Topology Usage accept_as_is async_transport attempt authored book_files
    book_from_state book_keys budget_refusal check_key depths draft_schema each_section figures
    flavour_of from_pico hookimpl http_settings_schema image_problem image_type is_internal
    key_problem linked load_topology max_reply_bytes object_schema open_sqlite outline_schema
    parse_reply parse_retry_after prose_digest provider_error public_url redact redis_outage
    redis_scan_pattern redis_schema register_secret response_schema schema_params slug spared
    sqlite_errors sync_transport take_authorship to_pico to_price translated transport_failure
    usd write_book_files
""".split()  # noqa: SIM905 - a block of names reads better than a line for each


def test_the_kit_exports_exactly_these_names_under_this_version() -> None:
    assert kit.API_VERSION == API_VERSION, CHANGE
    assert list(kit.__all__) == NAMES, CHANGE
    assert sorted(NAMES) == NAMES


def test_every_name_resolves() -> None:
    missing = [name for name in NAMES if not hasattr(kit, name)]
    assert missing == []


def test_type_checkers_see_each_name_where_it_loads_from() -> None:
    """The ``TYPE_CHECKING`` imports (what mypy reads) and the lazy table (what runs) agree."""
    tree = ast.parse(Path(kit.__file__).read_text(encoding="utf-8"))
    checked = {
        alias.asname or alias.name: node.module
        for block in tree.body
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for node in ast.walk(block)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    lazy = dict(kit._EXPORTS)
    assert checked == lazy
    assert set(lazy) == set(NAMES) - {"API_VERSION"}


def test_the_plugin_guide_lists_every_name_and_the_version() -> None:
    text = GUIDE.read_text(encoding="utf-8")
    section = text.split("## The kit: the stable API", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([A-Za-z_]\w*)`", section))
    assert listed == set(NAMES)
    assert f"`questfoundry.kit.API_VERSION` is **{API_VERSION}**" in section
