"""The SQLite store: idempotent writes, queries, alerts, the hash-chained triage ledger."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.errors import NotFoundError
from collector.ledger import verify_triage_chain
from collector.models import Alert, DeadLetter, EventQuery, TriageRecord
from collector.store.sqlite import SqliteStore
from tests.conftest import build_event

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def ts(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    s = SqliteStore(tmp_path / "s.db")
    yield s
    s.close()


def test_resend_is_a_noop(store: SqliteStore) -> None:
    events = [build_event(seq=i, timestamp=ts(i)) for i in range(1, 6)]
    first = store.write_events(events)
    assert first.inserted == 5
    assert first.duplicates == 0
    again = store.write_events([*events, events[0]])
    assert again.inserted == 0
    assert again.duplicates == 6
    assert store.count_events() == 5
    # duplicates inside one batch count once
    twin = build_event(seq=99, timestamp=ts(9))
    result = store.write_events([twin, twin])
    assert (result.inserted, result.duplicates) == (1, 1)


def test_query_by_host_time_kind_pid(store: SqliteStore) -> None:
    store.write_events(
        [
            build_event(seq=1, timestamp=ts(0), host="a", process__pid=10),
            build_event(seq=2, timestamp=ts(5), host="a", process__pid=11),
            build_event("network_connection", seq=3, timestamp=ts(6), host="a"),
            build_event(seq=4, timestamp=ts(5), host="b", process__pid=10),
        ]
    )
    got = store.query_events(EventQuery(host="a", since=T0 + timedelta(minutes=1)))
    assert [e["sekimori"]["seq"] for e in got] == [2, 3]
    got = store.query_events(EventQuery(kinds=("process_start",), pids=(10,)))
    assert sorted(e["host"]["name"] for e in got) == ["a", "b"]
    assert store.query_events(EventQuery(host="a", limit=1))[0]["sekimori"]["seq"] == 1


def test_hostile_strings_round_trip(store: SqliteStore) -> None:
    hostile = "x'); DROP TABLE events;--\u0000\u202e関守"
    event = build_event(seq=1, process__command_line=hostile, host=hostile)
    store.write_events([event])
    (got,) = store.query_events(EventQuery(host=hostile))
    assert got == event


def test_dead_letters_keep_raw(store: SqliteStore) -> None:
    store.write_dead_letters(
        [DeadLetter(agent_id="a", event_id=None, reason="bad", raw='{"x":1}', received_at=T0)]
    )
    (letter,) = store.dead_letters()
    assert (letter.reason, letter.raw) == ("bad", '{"x":1}')


def _alert(**kw: object) -> Alert:
    base: dict[str, object] = {
        "id": "A-1",
        "rule_id": "r1",
        "title": "t",
        "level": "high",
        "tags": ("attack.execution",),
        "host": "pc-01",
        "zone": "internet",
        "entity": "pc-01",
        "count": 1,
        "first_seen": T0,
        "last_seen": T0,
        "event_ids": ("e1",),
    }
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def test_alerts(store: SqliteStore) -> None:
    store.upsert_alert(_alert())
    assert store.get_alert("A-1") == _alert()
    assert store.find_open_alert("r1", "pc-01", T0 - timedelta(minutes=1)) == _alert()
    assert store.find_open_alert("r1", "pc-01", T0 + timedelta(minutes=1)) is None
    closed = store.set_alert_status("A-1", "closed", "benign")
    assert (closed.status, closed.resolution) == ("closed", "benign")
    assert store.find_open_alert("r1", "pc-01", T0 - timedelta(minutes=1)) is None
    assert [a.id for a in store.list_alerts(status="closed")] == ["A-1"]
    assert store.list_alerts(status="open") == []
    with pytest.raises(NotFoundError):
        store.set_alert_status("nope", "closed", None)


def test_triage_ledger_detects_tampering(store: SqliteStore, tmp_path: Path) -> None:
    for i in range(3):
        store.append_triage(
            TriageRecord(
                alert_id="A-1",
                playbook_id="p",
                step_id=f"s{i}",
                kind="note",
                actor="analyst",
                at=T0,
                detail={"text": f"n{i}"},
            )
        )
    records = store.triage_records()
    assert [r.seq for r in records] == [1, 2, 3]
    assert verify_triage_chain(records) == []
    raw = sqlite3.connect(tmp_path / "s.db")
    raw.execute('UPDATE triage SET detail = \'{"text":"forged"}\' WHERE seq = 2')
    raw.commit()
    problems = verify_triage_chain(store.triage_records())
    assert problems == ["record 2: content does not match its hash (edited)"]
    raw.execute("DELETE FROM triage WHERE seq = 2")
    raw.commit()
    problems = verify_triage_chain(store.triage_records())
    assert "record 3: expected seq 2 (missing record)" in problems
    raw.close()
