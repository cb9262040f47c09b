"""Search-engine specifics: per-item bulk results, retries, backpressure, all-or-nothing
batches, mappings that cannot explode, retention, store URLs. Real nodes; faults are injected
by wrapping the real transport."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.errors import ConfigError, StoreError
from collector.models import EventQuery
from collector.store import open_store
from collector.store.search import SearchStore
from collector.store.search_bulk import RetryPolicy
from collector.store.search_mapping import IndexLayout
from collector.store.search_transport import ClusterError, Transport
from collector.store.sqlite import SqliteStore
from tests.conftest import build_event
from tests.contract.conftest import ENGINES, Harness, close_harness, open_harness

FAST = RetryPolicy(attempts=3, backoff=0.01)


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest, nodes: Any, tmp_path: Path) -> Iterator[Harness]:
    request.applymarker(getattr(pytest.mark, request.param))
    opened = open_harness(request.param, nodes, tmp_path)
    yield opened
    close_harness(opened)


def test_per_item_errors_are_dead_lettered_and_counted(engine: Harness) -> None:
    good = [build_event(seq=i) for i in range(1, 4)]
    bad = build_event("network_listen", seq=9, source__ip="not-an-ip")
    result = engine.store.write_events([good[0], bad, *good[1:]])
    assert (result.inserted, result.duplicates, result.dead_lettered) == (3, 0, 1)
    (letter,) = engine.store.dead_letters()
    assert letter.event_id == bad["event"]["id"]
    assert "source.ip" in letter.reason
    assert engine.store.count_events() == 3


def test_unknown_fields_are_kept_but_never_mapped(engine: Harness) -> None:
    event = build_event(seq=1)
    event["custom"] = {f"f{i}": i for i in range(3000)}  # far past total_fields.limit
    assert engine.store.write_events([event]).inserted == 1
    (got,) = engine.store.query_events(EventQuery())
    assert got["custom"]["f2999"] == 2999
    transport = engine.store.transport  # type: ignore[attr-defined]
    mapping = transport.request("GET", f"/{engine.store.layout.events_pattern}/_mapping")  # type: ignore[attr-defined]
    (index,) = mapping.values()
    assert "custom" not in index["mappings"]["properties"]


class Faulty:
    """Wraps a transport; ``plan`` says what each bulk call does: 'ok', 'down' (nothing
    applied), 'lost' (applied, answer lost), '429:<n>' (first n items answered 429)."""

    def __init__(self, inner: Transport, plan: list[str]) -> None:
        self.inner = inner
        self.plan = plan
        self.bulks = 0

    def request(
        self, method: str, path: str, *, params: Mapping[str, str] | None = None, body: Any = None
    ) -> Any:
        return self.inner.request(method, path, params=params, body=body)

    def bulk(self, ndjson: bytes, *, params: Mapping[str, str] | None = None) -> Any:
        step = self.plan[self.bulks] if self.bulks < len(self.plan) else "ok"
        self.bulks += 1
        if step == "down":
            raise ClusterError(503, "unavailable")
        if step.startswith("429:"):
            lines = ndjson.splitlines()
            n = int(step[4:])
            n = min(n, len(lines) // 2)
            rest = lines[2 * n :]
            answer = (
                self.inner.bulk(b"\n".join(rest) + b"\n", params=params) if rest else {"items": []}
            )
            busy = {
                "create": {
                    "status": 429,
                    "error": {"type": "es_rejected_execution_exception", "reason": "queue full"},
                }
            }
            return {"errors": True, "items": [busy] * n + answer["items"]}
        answer = self.inner.bulk(ndjson, params=params)
        if step == "lost":
            raise ClusterError(0, "connection reset", ambiguous=True)
        return answer

    def info(self) -> dict[str, Any]:
        return self.inner.info()

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def faulty(nodes: Any) -> Iterator[tuple[SearchStore, Faulty]]:
    from collector.store.opensearch import OpenSearchTransport
    from collector.store.search_transport import ConnectionOptions

    node = nodes.get("opensearch")
    wrapper = Faulty(OpenSearchTransport(ConnectionOptions(hosts=(node.url,))), [])
    layout = IndexLayout(prefix=f"f{uuid.uuid4().hex[:10]}")
    store = SearchStore(wrapper, layout, FAST)
    yield store, wrapper
    wrapper.request("DELETE", f"/{layout.prefix}-*")
    wrapper.request("DELETE", f"/_index_template/{layout.prefix}-events")
    store.close()


@pytest.mark.opensearch
def test_transient_items_are_retried(faulty: tuple[SearchStore, Faulty]) -> None:
    store, wrapper = faulty
    wrapper.plan = ["429:2", "down", "ok"]
    events = [build_event(seq=i) for i in range(1, 6)]
    result = store.write_events(events)
    assert (result.inserted, result.duplicates, result.dead_lettered) == (5, 0, 0)
    assert wrapper.bulks == 3
    assert store.count_events() == 5


@pytest.mark.opensearch
def test_a_lost_answer_still_reports_new_events(faulty: tuple[SearchStore, Faulty]) -> None:
    store, wrapper = faulty
    store.write_events([build_event(seq=1)])
    wrapper.plan = ["lost", "ok"]
    events = [build_event(seq=1), build_event(seq=2)]
    result = store.write_events(events)
    # seq 1 was stored before (duplicate); seq 2 was created by the lost attempt (still new)
    assert result.new_ids == {events[1]["event"]["id"]}
    assert result.duplicates == 1


@pytest.mark.opensearch
def test_backpressure_never_half_writes(faulty: tuple[SearchStore, Faulty]) -> None:
    store, wrapper = faulty
    wrapper.plan = ["429:1", "429:1", "429:1"]
    events = [build_event(seq=i) for i in range(1, 4)]
    with pytest.raises(StoreError, match="nothing of the batch was kept"):
        store.write_events(events)
    assert store.count_events() == 0  # the two items that were created are gone again
    result = store.write_events(events)  # the agent's resend
    assert result.inserted == 3


def test_unreachable_cluster_is_a_store_error() -> None:
    from tests.nodes import free_port

    with pytest.raises(StoreError, match="cluster request failed"):
        open_store(f"opensearch+http://127.0.0.1:{free_port()}", request_timeout=2)


@pytest.mark.opensearch
def test_retention_deletes_whole_old_months(nodes: Any) -> None:
    node = nodes.get("opensearch")
    prefix = f"r{uuid.uuid4().hex[:10]}"
    store = open_store(f"opensearch+{node.url}", prefix=prefix)
    try:
        store.write_events(
            [
                build_event(seq=1, timestamp="2025-01-15T00:00:00.000000Z"),
                build_event(seq=2, timestamp="2026-11-26T00:00:00.000000Z"),
            ]
        )
        assert isinstance(store, SearchStore)
        kept = IndexLayout(prefix=prefix, retention_days=90)
        store.layout = kept
        deleted = store.apply_retention(now=datetime(2026, 11, 30, tzinfo=UTC))
        assert deleted == [f"{prefix}-events-2025.01"]
        assert store.count_events() == 1
    finally:
        store.transport.request("DELETE", f"/{prefix}-*")  # type: ignore[attr-defined]
        store.transport.request("DELETE", f"/_index_template/{prefix}-events")  # type: ignore[attr-defined]
        store.close()


def test_expired_months() -> None:
    layout = IndexLayout(prefix="s", retention_days=30)
    names = [
        "s-events-2026.09",
        "s-events-2026.10",
        "s-events-2026.11",
        "s-events-bogus",
        "x-events-2020.01",
    ]
    assert layout.expired(names, datetime(2026, 11, 30, tzinfo=UTC)) == ["s-events-2026.09"]
    assert IndexLayout().expired(names) == []


def test_store_urls(tmp_path: Path) -> None:
    store = open_store(f"sqlite://{tmp_path}/x.db")
    assert isinstance(store, SqliteStore)
    store.close()
    with pytest.raises(ConfigError, match="unknown store URL"):
        open_store("mongodb://x")
    with pytest.raises(ConfigError, match="as an option"):
        open_store("opensearch+https://h:9200?api_key=secret")
    with pytest.raises(ConfigError, match="verify"):
        open_store("opensearch+https://h:9200", verify_certs=False)
    with pytest.raises(ConfigError, match="unknown store option"):
        open_store("elasticsearch+https://h:9200?colour=blue")
    with pytest.raises(ConfigError, match="not a valid int"):
        open_store("elasticsearch+https://h:9200?replicas=many")
