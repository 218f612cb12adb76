"""Ledger files as older versions of QuestFoundry wrote them, for migration tests and benchmarks."""

from __future__ import annotations

#: the ledger's schema version 1 (until this release): calls only, reservations as rows
SCHEMA_1 = """
CREATE TABLE calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, time REAL NOT NULL, day TEXT NOT NULL,
    run_id TEXT NOT NULL DEFAULT '', role TEXT, provider TEXT NOT NULL, model TEXT NOT NULL,
    input_tokens INTEGER NOT NULL DEFAULT 0, output_tokens INTEGER NOT NULL DEFAULT 0,
    cached_input_tokens INTEGER NOT NULL DEFAULT 0, cost INTEGER,
    cache_hit INTEGER NOT NULL DEFAULT 0, saved INTEGER, latency REAL NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0, waited REAL NOT NULL DEFAULT 0,
    status TEXT NOT NULL CHECK (status IN ('reserved', 'spent', 'hit'))
);
CREATE INDEX calls_day ON calls (day);
CREATE INDEX calls_spend ON calls (status, time, cost);
CREATE INDEX calls_provider_spend ON calls (provider, status, time, cost);
PRAGMA user_version = 1;
"""
