"""The SQLite events table: the current ``(ts, id)`` layout, the two earlier layouts still
readable and writable, and alert event lookups that need no id index."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from agents.schema import parse_iso
from collector.event_lookup import MARGIN, alert_events
from collector.models import Alert, EventQuery
from collector.store.sqlite import SqliteStore
from tests.conftest import build_event

_EARLIER = {
    "without_rowid": """
        CREATE TABLE events (id TEXT PRIMARY KEY, ts REAL NOT NULL, host TEXT NOT NULL,
            kind TEXT NOT NULL, pid INTEGER, agent_id TEXT NOT NULL, seq INTEGER NOT NULL,
            doc BLOB NOT NULL) WITHOUT ROWID;""",
    "rowid_unique_id": """
        CREATE TABLE events (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, ts REAL NOT NULL,
            host TEXT NOT NULL, kind TEXT NOT NULL, pid INTEGER, agent_id TEXT NOT NULL,
            seq INTEGER NOT NULL, doc BLOB NOT NULL);""",
}


def _indices(path: Path) -> dict[str, str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
            " AND sql IS NOT NULL"
        ).fetchall()
    return dict(rows)


def test_a_new_file_has_the_time_ordered_dedupe_key_and_no_id_index(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "new.db")
    store.close()
    indices = _indices(tmp_path / "new.db")
    assert set(indices) == {"events_ts_id", "events_host_ts", "events_agent_seq"}
    assert "UNIQUE" in indices["events_ts_id"] and "(ts, id)" in indices["events_ts_id"]


@pytest.mark.parametrize("layout", ["current", *_EARLIER])
def test_every_layout_stores_each_event_once_and_finds_it(tmp_path: Path, layout: str) -> None:
    path = tmp_path / f"{layout}.db"
    if layout != "current":
        with sqlite3.connect(path) as conn:
            conn.executescript(_EARLIER[layout])
    store = SqliteStore(path)
    events = [build_event(seq=n) for n in range(1, 6)]
    first = store.write_events(events[:3])
    again = store.write_events(events)  # a resend overlapping the first batch
    assert first.inserted == 3 and first.duplicates == 0
    assert again.inserted == 2 and again.duplicates == 3
    assert store.count_events() == 5
    wanted = (events[4]["event"]["id"], events[0]["event"]["id"])
    found = store.query_events(EventQuery(ids=wanted))
    assert [e["event"]["id"] for e in found] == [wanted[1], wanted[0]]  # store order
    store.close()
    if layout != "current":  # no index of the new layout is forced on an earlier file
        assert "events_ts_id" not in _indices(path)


def _alert(events: list[dict[str, Any]], first: str, last: str) -> Alert:
    return Alert(
        id="A-1",
        rule_id="r",
        title="t",
        level="high",
        tags=(),
        host="pc-1",
        zone=None,
        entity="pc-1",
        count=len(events),
        first_seen=parse_iso(first),
        last_seen=parse_iso(last),
        event_ids=tuple(e["event"]["id"] for e in events),
        description="",
    )


class _Counting(SqliteStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.queries: list[EventQuery] = []

    def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        self.queries.append(query)
        return super().query_events(query)


def test_alert_events_use_the_alert_span_and_still_find_events_outside_it(
    tmp_path: Path,
) -> None:
    store = _Counting(tmp_path / "a.db")
    inside = [
        build_event(seq=1, timestamp="2026-11-26T10:00:00.000000Z"),
        build_event(seq=2, timestamp="2026-11-26T10:05:00.000000Z"),
    ]
    outside = build_event(seq=3, timestamp="2026-11-26T13:00:00.000000Z")
    store.write_events([*inside, outside])

    found = alert_events(store, _alert(inside, "2026-11-26T10:00:00Z", "2026-11-26T10:05:00Z"))
    assert [e["sekimori"]["seq"] for e in found] == [1, 2]
    assert len(store.queries) == 1  # all found in the span: one ranged query
    assert store.queries[0].since == parse_iso("2026-11-26T10:00:00Z") - MARGIN

    store.queries.clear()
    mixed = _alert([outside, *inside], "2026-11-26T10:00:00Z", "2026-11-26T10:05:00Z")
    found = alert_events(store, mixed)
    assert [e["sekimori"]["seq"] for e in found] == [1, 2, 3]  # store order, all of them
    assert len(store.queries) == 2 and store.queries[1].since is None
    assert alert_events(store, mixed, limit=1)[0]["sekimori"]["seq"] == 3
    assert alert_events(store, _alert([], "2026-11-26T10:00:00Z", "2026-11-26T10:00:00Z")) == []
    store.close()


def test_reopening_a_new_file_adds_no_index(tmp_path: Path) -> None:
    for _ in range(2):
        SqliteStore(tmp_path / "again.db").close()
    assert set(_indices(tmp_path / "again.db")) == {
        "events_ts_id",
        "events_host_ts",
        "events_agent_seq",
    }


def test_processes_creating_one_file_at_once_do_not_race(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    path = tmp_path / "race.db"
    with ThreadPoolExecutor(6) as pool:
        stores = list(pool.map(lambda _: SqliteStore(path), range(6)))
    for store in stores:
        store.close()
    assert set(_indices(path)) == {"events_ts_id", "events_host_ts", "events_agent_seq"}


def test_checkpoints_every_40_mib_whatever_the_page_size(tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as conn:  # an earlier file: SQLite's default 4 KiB pages
        conn.executescript(_EARLIER["rowid_unique_id"])
    for path, pages in ((tmp_path / "new.db", 2560), (old, 10240)):
        store = SqliteStore(path)
        assert store._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == pages
        store.close()
