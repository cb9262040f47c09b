"""The store contract, run on every store: idempotent writes, queries, dead letters, alerts,
the hash-chained triage ledger. (Moved here from tests/collector/test_sqlite_store.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents.errors import NotFoundError
from collector.ledger import verify_triage_chain
from collector.models import Alert, DeadLetter, EventQuery, TriageRecord
from collector.store.base import Store
from tests.conftest import build_event
from tests.contract.conftest import Harness

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)


def ts(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_resend_is_a_noop(store: Store) -> None:
    events = [build_event(seq=i, timestamp=ts(i)) for i in range(1, 6)]
    first = store.write_events(events)
    assert first.inserted == 5
    assert first.duplicates == 0
    assert first.new_ids == {e["event"]["id"] for e in events}
    again = store.write_events([*events, events[0]])
    assert again.inserted == 0
    assert again.duplicates == 6
    assert store.count_events() == 5
    # duplicates inside one batch count once
    twin = build_event(seq=99, timestamp=ts(9))
    result = store.write_events([twin, twin])
    assert (result.inserted, result.duplicates) == (1, 1)
    assert store.count_events() == 6


def test_racing_resends_store_each_event_once(store: Store) -> None:
    """Concurrent writes (which the SQLite and search stores group into shared transactions
    or bulk requests) answer as if one after another: every id is new for exactly one
    caller, and the store holds each event once."""
    from concurrent.futures import ThreadPoolExecutor

    from collector.store.base import encode_event

    batches = [
        [encode_event(build_event(seq=b * 10 + i + 1, timestamp=ts(b))) for i in range(10)]
        for b in range(12)
    ]
    write = store.write_encoded_events  # type: ignore[attr-defined]  # every shipped store
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(write, batches + batches[::-1] + batches))
    new = [event_id for result in results for event_id in result.new_ids]
    assert len(new) == len(set(new)) == 120
    assert sum(r.duplicates for r in results) == 240
    assert all(r.inserted + r.duplicates == 10 for r in results)
    assert store.count_events() == 120


def test_query_by_host_time_kind_pid(store: Store) -> None:
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
    until = store.query_events(EventQuery(until=T0 + timedelta(minutes=5)))
    assert [e["sekimori"]["seq"] for e in until] == [1, 2, 4]
    some = store.query_events(EventQuery(ids=(got[0]["event"]["id"],)))
    assert some == [got[0]]
    # "a" is not "A": host filters are exact on every store
    assert store.query_events(EventQuery(host="A")) == []


def test_microsecond_time_bounds(store: Store) -> None:
    stamp = "2026-11-26T06:00:00.123456Z"
    store.write_events([build_event(seq=1, timestamp=stamp)])
    moment = datetime(2026, 11, 26, 6, 0, 0, 123456, tzinfo=UTC)
    assert len(store.query_events(EventQuery(since=moment, until=moment))) == 1
    tick = timedelta(microseconds=1)
    assert store.query_events(EventQuery(since=moment + tick)) == []
    assert store.query_events(EventQuery(until=moment - tick)) == []


def test_paged_scan_in_order(store: Store) -> None:
    events = [build_event(seq=i, timestamp=ts(i / 1000)) for i in range(1, 5012)]
    store.write_events(events)
    seen = [e["sekimori"]["seq"] for e in store.iter_events(EventQuery())]
    assert seen == list(range(1, 5012))
    assert len(store.query_events(EventQuery(limit=5003))) == 5003


def test_hostile_strings_round_trip(store: Store) -> None:
    hostile = "x'); DROP TABLE events;--\u0000\u202e関守 \" OR 1=1 *:*"
    event = build_event(seq=1, process__command_line=hostile, host=hostile)
    store.write_events([event])
    (got,) = store.query_events(EventQuery(host=hostile))
    assert got == event


def test_dead_letters_keep_raw(store: Store) -> None:
    letters = [
        DeadLetter(agent_id="a", event_id=None, reason="bad", raw='{"x":1}', received_at=T0),
        DeadLetter(agent_id="a", event_id="e2", reason="worse", raw="{", received_at=T0),
    ]
    store.write_dead_letters(letters)
    got = store.dead_letters()
    assert [(d.reason, d.raw, d.event_id) for d in got] == [
        ("worse", "{", "e2"),
        ("bad", '{"x":1}', None),
    ]
    assert got[1].received_at == T0
    assert len(store.dead_letters(limit=1)) == 1


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
        "last_seen": T0 + timedelta(microseconds=7),
        "event_ids": ("e1",),
    }
    base.update(kw)
    return Alert(**base)  # type: ignore[arg-type]


def test_alerts(store: Store) -> None:
    store.upsert_alert(_alert())
    assert store.get_alert("A-1") == _alert()
    assert store.get_alert("A-404") is None
    assert store.find_open_alert("r1", "pc-01", T0 - timedelta(minutes=1)) == _alert()
    assert store.find_open_alert("r1", "pc-01", T0 + timedelta(microseconds=7)) == _alert()
    assert store.find_open_alert("r1", "pc-01", T0 + timedelta(microseconds=8)) is None
    store.upsert_alert(_alert(count=2, event_ids=("e1", "e2")))
    assert store.get_alert("A-1") == _alert(count=2, event_ids=("e1", "e2"))
    closed = store.set_alert_status("A-1", "closed", "benign")
    assert (closed.status, closed.resolution) == ("closed", "benign")
    assert store.find_open_alert("r1", "pc-01", T0 - timedelta(minutes=1)) is None
    assert [a.id for a in store.list_alerts(status="closed")] == ["A-1"]
    assert store.list_alerts(status="open") == []
    with pytest.raises(NotFoundError):
        store.set_alert_status("nope", "closed", None)


def test_list_alerts_filters(store: Store) -> None:
    for n in range(3):
        store.upsert_alert(
            _alert(
                id=f"A-{n}",
                host=f"h{n % 2}",
                first_seen=T0 + timedelta(hours=n),
                last_seen=T0 + timedelta(hours=n, minutes=5),
            )
        )
    assert [a.id for a in store.list_alerts()] == ["A-2", "A-1", "A-0"]
    assert [a.id for a in store.list_alerts(host="h0")] == ["A-2", "A-0"]
    assert [a.id for a in store.list_alerts(since=T0 + timedelta(hours=1))] == ["A-2", "A-1"]
    assert [a.id for a in store.list_alerts(until=T0 + timedelta(minutes=30))] == ["A-0"]
    assert len(store.list_alerts(limit=2)) == 2


def test_triage_ledger_detects_tampering(harness: Harness) -> None:
    store = harness.store
    for i in range(3):
        store.append_triage(
            TriageRecord(
                alert_id="A-1" if i != 1 else "A-2",
                playbook_id="p",
                step_id=f"s{i}",
                kind="note",
                actor="analyst",
                at=T0 + timedelta(minutes=i),
                detail={"text": f"n{i}", "nested": {"k": [1, 2.5, "関"]}},
            )
        )
    records = store.triage_records()
    assert [r.seq for r in records] == [1, 2, 3]
    assert verify_triage_chain(records) == []
    assert [r.seq for r in store.triage_records(alert_id="A-1")] == [1, 3]
    assert [r.seq for r in store.triage_records(since=T0 + timedelta(minutes=1))] == [2, 3]
    harness.tamper_triage(2, {"text": "forged"})
    problems = verify_triage_chain(store.triage_records())
    assert problems == ["record 2: content does not match its hash (edited)"]
    harness.tamper_triage(2, None)
    problems = verify_triage_chain(store.triage_records())
    assert "record 3: expected seq 2 (missing record)" in problems
