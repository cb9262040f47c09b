"""The SQLite ``events`` table: its layouts, and writing groups of batches into it.

Current layout (files created now)::

    events(n INTEGER PRIMARY KEY, id, ts, host, kind, pid, agent_id, seq, doc)
    UNIQUE (ts, id)       -- the dedupe key, and the time index
    INDEX (host, ts)      -- timelines
    INDEX (agent_id, seq) -- an agent's highest sequence number

Why ``(ts, id)`` and not ``id``: ``event.id`` is a content hash, so an index on it takes every
insert at a random place, and each commit rewrites one index page per event once the index
outgrows the batch (the cost per event grew with the file: bench/RESULTS.md). ``(ts, id)``
inserts land near the end, where the recent events are. It is as strict a dedupe key: the id
hashes the whole event, ``@timestamp`` included, so one id always comes with one ``ts``.
A lookup by id alone has no index in this layout; ``collector.event_lookup`` gives such
lookups a time range first (alerts know when their events happened).

Earlier layouts keep working: a rowid table with ``UNIQUE(id)`` (the same write statements,
dedupe on the id index), and the first ``WITHOUT ROWID`` table keyed on ``id`` (no ``n``:
existing ids are looked up before the insert).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, Final

from collector.models import WriteResult
from collector.store.base import EncodedEvent

CURRENT_LAYOUT: Final = """
CREATE TABLE events (
    n INTEGER PRIMARY KEY,
    id TEXT NOT NULL,
    ts REAL NOT NULL,
    host TEXT NOT NULL,
    kind TEXT NOT NULL,
    pid INTEGER,
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    doc BLOB NOT NULL
);
CREATE UNIQUE INDEX events_ts_id ON events(ts, id);
CREATE INDEX events_host_ts ON events(host, ts);
CREATE INDEX events_agent_seq ON events(agent_id, seq);
"""
# Indices every earlier layout had (kept for files that have them; never added to new ones).
_EARLIER_INDICES: Final = """
CREATE INDEX IF NOT EXISTS events_host_ts ON events(host, ts);
CREATE INDEX IF NOT EXISTS events_ts ON events(ts);
CREATE INDEX IF NOT EXISTS events_agent_seq ON events(agent_id, seq);
"""
_EARLIER_INDEX_NAMES: Final = ("events_host_ts", "events_ts", "events_agent_seq")
_COLUMNS: Final = "id, ts, host, kind, pid, agent_id, seq, doc"
_INSERT: Final = f"INSERT INTO events({_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)"
# Only a uniqueness conflict is skipped (a NOT NULL violation still fails the transaction).
_INSERT_NEW: Final = _INSERT + " ON CONFLICT DO NOTHING"


def ensure_events_table(conn: sqlite3.Connection) -> bool:
    """Create the table in the current layout if the file has none; True when the table has
    the rowid column ``n`` (every layout but the first). A file that needs nothing is only
    read (a read-only copy opens too); otherwise the change is one write transaction, so two
    processes opening a new file at once cannot race. ``conn`` must be in autocommit mode."""
    if _complete(conn):
        return _has_rowid(conn)
    conn.execute("BEGIN IMMEDIATE")
    try:
        if not _has(conn, "table", "events"):
            _run_script(conn, CURRENT_LAYOUT)
        elif not _has(conn, "index", "events_ts_id"):  # an earlier layout keeps its indices
            _run_script(conn, _EARLIER_INDICES)
        rowid = _has_rowid(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return rowid


def _complete(conn: sqlite3.Connection) -> bool:
    """The table and every index of its layout exist already."""
    if not _has(conn, "table", "events"):
        return False
    if _has(conn, "index", "events_ts_id"):
        return True
    return all(_has(conn, "index", name) for name in _EARLIER_INDEX_NAMES)


def _has_rowid(conn: sqlite3.Connection) -> bool:
    return any(row[1] == "n" for row in conn.execute("PRAGMA table_info(events)"))


def _run_script(conn: sqlite3.Connection, script: str) -> None:
    """``executescript`` would commit the open transaction first: one statement at a time."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _has(conn: sqlite3.Connection, kind: str, name: str) -> bool:
    found = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = ? AND name = ?", (kind, name)
    ).fetchone()
    return found is not None


def write_groups(
    conn: sqlite3.Connection, batches: list[Sequence[EncodedEvent]], rowid: bool
) -> list[WriteResult]:
    """Write batches inside the caller's transaction, as if one after another: an id stored
    before, or held by an earlier batch of the group (or earlier in the same batch), is a
    duplicate. ``rowid``: the table has ``n`` (see ``ensure_events_table``)."""
    rows = [
        (ev.id, ev.ts, ev.host, ev.kind, ev.pid, ev.agent_id, ev.seq, ev.doc)
        for events in batches
        for ev in events
    ]
    stored = _insert_new(conn, rows) if rowid else _insert_legacy(conn, rows)
    results: list[WriteResult] = []
    for events in batches:
        new_ids: set[str] = set()
        for ev in events:
            if ev.id in stored:
                stored.discard(ev.id)  # a later copy in the group is a duplicate
                new_ids.add(ev.id)
        results.append(WriteResult(frozenset(new_ids), len(events) - len(new_ids)))
    return results


def _insert_new(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> set[str]:
    """Insert, skipping conflicts; the ids inserted are the rows past the old highest ``n``
    (the caller's write transaction excludes every other writer)."""
    (highest,) = conn.execute("SELECT coalesce(max(n), 0) FROM events").fetchone()
    conn.executemany(_INSERT_NEW, rows)
    return {row[0] for row in conn.execute("SELECT id FROM events WHERE n > ?", (highest,))}


def _insert_legacy(conn: sqlite3.Connection, rows: list[tuple[Any, ...]]) -> set[str]:
    """The first layout (no ``n``): look the ids up, insert the ones not stored yet."""
    existing: set[str] = set()
    ids = [row[0] for row in rows]
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        existing.update(
            r[0] for r in conn.execute(f"SELECT id FROM events WHERE id IN ({marks})", chunk)
        )
    fresh: list[tuple[Any, ...]] = []
    stored: set[str] = set()
    for row in rows:
        if row[0] not in existing and row[0] not in stored:
            stored.add(row[0])
            fresh.append(row)
    conn.executemany(_INSERT, fresh)
    return stored
