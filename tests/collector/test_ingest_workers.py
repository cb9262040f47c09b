"""Ingest worker processes change where the work runs, not what happens.

The same sequence of bodies (rule samples that raise alerts, a resend, broken events, refused
bodies, a spoofed identity) goes through a pipeline without workers and one with workers, each
on its own SQLite store: the answers, stored events, dead letters, alerts and counters agree.
Concurrent ingest calls store every event exactly once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest

from agents.errors import AuthError, InputError
from agents.schema import COLLECTOR_FIELDS, flatten, seal, set_path
from collector.alerts import AlertManager
from collector.models import EventQuery
from collector.pipeline import IngestPipeline
from collector.store.sqlite import SqliteStore
from collector.validate import Limits
from collector.zones import example_zones_path, load_zones
from detections import default_rules_dir, load_rules
from tests.conftest import batch, build_event

AGENT = "agent-test"


def _samples() -> list[dict[str, Any]]:
    """Every 'match' sample of the starter rules, re-owned by AGENT and sealed again."""
    events: list[dict[str, Any]] = []
    for path in sorted(default_rules_dir().rglob("*.samples.json")):
        for sample in json.loads(path.read_text(encoding="utf-8")).get("match", []):
            event: dict[str, Any] = {}
            for field, value in flatten(sample):
                if field not in COLLECTOR_FIELDS and field != "event.id":
                    set_path(event, field, value)
            set_path(event, "agent.id", AGENT)
            set_path(event, "sekimori.seq", len(events) + 1)
            events.append(seal(event))
    return events


def _bodies() -> list[bytes]:
    samples = _samples()
    assert len(samples) > 10
    first = orjson.dumps(batch(samples[: len(samples) // 2]))
    second = orjson.dumps(batch(samples[len(samples) // 2 :]))
    unknown = build_event(seq=900, process__name="x")
    unknown["process"]["evil"] = 1
    tampered = build_event(seq=901)
    tampered["process"]["pid"] = 1
    good = build_event("network_connection", seq=902, destination__ip="203.0.113.9")
    junk: list[Any] = [good, unknown, tampered, 7]
    mixed = orjson.dumps(batch(junk))
    nan = (
        b'{"schema":"sekimori.batch/1","agent":{"id":"agent-test"},"events":['
        + orjson.dumps(build_event(seq=903))
        + b',{"sekimori":{"seq":904},"x":NaN}]}'
    )
    return [first, second, first, mixed, mixed, nan]


@pytest.fixture
def pipelines(tmp_path: Path) -> Iterator[tuple[IngestPipeline, IngestPipeline]]:
    zones = load_zones(example_zones_path())
    rules = load_rules([default_rules_dir()])
    built = []
    for name, workers in (("inline", 0), ("workers", 2)):
        store = SqliteStore(tmp_path / f"{name}.db")
        built.append(IngestPipeline(store, zones, rules, AlertManager(store), workers=workers))
    yield built[0], built[1]
    for pipeline in built:
        pipeline.close()
        pipeline.store.close()


def _answer(pipeline: IngestPipeline, body: bytes, agent: str | None) -> Any:
    try:
        return pipeline.ingest(body, authenticated_agent=agent)
    except (InputError, AuthError) as exc:
        return (type(exc).__name__, exc.message, exc.remedy)


def _state(pipeline: IngestPipeline) -> dict[str, Any]:
    store = pipeline.store
    events = store.query_events(EventQuery(limit=10_000))
    for event in events:
        del event["event"]["ingested"]
    stats = pipeline.stats
    return {
        "events": events,
        "letters": [(d.agent_id, d.event_id, d.reason, d.raw) for d in store.dead_letters(1000)],
        "alerts": store.list_alerts(limit=1000),
        "stats": (stats.batches, stats.accepted, stats.duplicates, stats.rejected),
        "alerts_raised": stats.alerts_raised,
    }


def test_workers_and_inline_pipelines_agree(
    pipelines: tuple[IngestPipeline, IngestPipeline],
) -> None:
    inline, workers = pipelines
    refused = [
        (b"{not json", None),
        (b"x" * (Limits().max_body_bytes + 1), None),
        (orjson.dumps(batch([build_event(seq=1)])), "someone-else"),
    ]
    for body, agent in [(b, AGENT) for b in _bodies()] + refused:
        assert _answer(inline, body, agent) == _answer(workers, body, agent)
    expected = _state(inline)
    assert expected["alerts"], "the samples must raise alerts for this test to mean anything"
    assert expected["letters"] and expected["events"]
    assert _state(workers) == expected


def test_concurrent_ingest_stores_each_event_once(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "c.db")
    pipeline = IngestPipeline(
        store,
        load_zones(example_zones_path()),
        load_rules([default_rules_dir()]),
        AlertManager(store),
        workers=2,
    )
    bodies = [
        orjson.dumps(batch([build_event(seq=b * 50 + i + 1) for i in range(50)])) for b in range(12)
    ]
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(pipeline.ingest, bodies + bodies))  # every batch twice
    pipeline.close()
    assert sum(a["accepted"] for a in answers) == 600
    assert sum(a["duplicates"] for a in answers) == 600
    assert store.count_events() == 600
    store.close()


def test_a_dead_worker_costs_a_resend_not_a_hang(tmp_path: Path) -> None:
    import os
    import signal

    from collector.ingest_workers import WorkerError

    store = SqliteStore(tmp_path / "d.db")
    pipeline = IngestPipeline(
        store,
        load_zones(example_zones_path()),
        load_rules([default_rules_dir()]),
        AlertManager(store),
        workers=1,
        worker_timeout=3.0,
    )
    body = orjson.dumps(batch([build_event(seq=1)]))
    assert pipeline.ingest(body)["accepted"] == 1
    assert pipeline._workers is not None
    for pid in list(pipeline._workers._pool._processes):
        os.kill(pid, signal.SIGKILL)
    outcomes: list[Any] = []
    for seq in range(2, 8):  # the pool replaces the worker; at most the batch in flight is lost
        try:
            outcomes.append(pipeline.ingest(orjson.dumps(batch([build_event(seq=seq)]))))
        except WorkerError:
            outcomes.append(None)
    pipeline.close()
    assert outcomes[-1] is not None and outcomes[-1]["accepted"] == 1
    assert store.count_events() == 1 + sum(1 for o in outcomes if o is not None)
    store.close()
