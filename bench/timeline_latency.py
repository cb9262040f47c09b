"""Host-timeline latency: one host, one hour, over a store of N events (default 1,000,000).

    .venv/bin/python bench/timeline_latency.py sqlite
    .venv/bin/python bench/timeline_latency.py opensearch      # starts a node (tests/nodes.py)
    .venv/bin/python bench/timeline_latency.py elasticsearch --url http://127.0.0.1:9200

Events: 1,000 hosts over 24 h (about 42 events per host-hour). Loads through
``Store.write_events`` in batches of 5,000, then times ``query_events(host, 1 h window)``
for 200 random host-hours (after one warm-up query). Then times the alert view's lookup of an
alert's events by id (``collector.event_lookup.alert_events``: ranged by the alert's span)
and, for comparison, the same ids looked up with no time range (its fallback).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from agents.schema import parse_iso
from bench.store_events import T0
from bench.store_events import events as make_events
from collector.event_lookup import alert_events
from collector.models import Alert, EventQuery
from collector.store import open_store
from collector.store.base import Store


def _load(store: Store, count: int) -> tuple[float, list[dict[str, Any]]]:
    """Seconds to write ``count`` events in batches of 5,000, and 50 of them to look up."""
    start = time.perf_counter()
    batch: list[dict[str, Any]] = []
    picked: list[dict[str, Any]] = []
    for n, event in enumerate(make_events(count, hosts=1000)):
        if n % (count // 50) == 7:
            picked.append(event)
        batch.append(event)
        if len(batch) == 5000:
            store.write_events(batch)
            batch = []
    if batch:
        store.write_events(batch)
    return time.perf_counter() - start, picked


def _lookups(store: Store, picked: list[dict[str, Any]]) -> tuple[list[float], list[float]]:
    ranged: list[float] = []
    unbounded: list[float] = []
    for event in picked:
        at = parse_iso(event["@timestamp"])
        alert = Alert(id="A-bench", rule_id="r", title="t", level="low", tags=(), host="h",
                      zone=None, entity="h", count=1, first_seen=at, last_seen=at,
                      event_ids=(event["event"]["id"],), description="")  # fmt: skip
        t = time.perf_counter()
        assert len(alert_events(store, alert)) == 1
        ranged.append(time.perf_counter() - t)
        t = time.perf_counter()
        assert len(store.query_events(EventQuery(ids=alert.event_ids, limit=1))) == 1
        unbounded.append(time.perf_counter() - t)
    return ranged, unbounded


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", choices=["sqlite", "opensearch", "elasticsearch"])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--url")
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    node = None
    tmp = tempfile.mkdtemp(prefix="sekimori-tl-")
    if args.store == "sqlite":
        url = f"sqlite://{tmp}/timeline.db"
        store = open_store(url)
    else:
        base = args.url
        if base is None:
            from tests.nodes import start_node

            node = start_node(args.store, Path(tmp))
            base = node.url
        prefix = f"tl{uuid.uuid4().hex[:6]}"
        store = open_store(f"{args.store}+{base}", prefix=prefix)
    try:
        load, picked = _load(store, args.events)
        assert store.count_events() == args.events
        rng = random.Random(3)
        store.query_events(EventQuery(host="pc-00001", since=T0, until=T0 + timedelta(hours=1)))
        timings = []
        sizes = []
        for _ in range(args.queries):
            host = f"pc-{rng.randrange(1000):05d}"
            since = T0 + timedelta(minutes=rng.randrange(0, 23 * 60))
            query = EventQuery(host=host, since=since, until=since + timedelta(hours=1))
            t = time.perf_counter()
            sizes.append(len(store.query_events(query)))
            timings.append(time.perf_counter() - t)
        timings.sort()
        print(
            f"{args.store}: loaded {args.events:,} events in {load:.1f} s "
            f"({args.events / load:,.0f}/s); "
            f"host-hour timeline ({statistics.mean(sizes):.0f} events): "
            f"median {statistics.median(timings) * 1000:.1f} ms, "
            f"p95 {timings[int(len(timings) * 0.95)] * 1000:.1f} ms, "
            f"max {timings[-1] * 1000:.1f} ms"
        )
        ranged, unbounded = _lookups(store, picked)
        print(
            f"{args.store}: an alert's events by id over {len(picked)} alerts: ranged by the"
            f" alert span median {statistics.median(ranged) * 1000:.1f} ms"
            f" (max {max(ranged) * 1000:.1f}); no range median"
            f" {statistics.median(unbounded) * 1000:.1f} ms (max {max(unbounded) * 1000:.1f})"
        )
        if args.store != "sqlite":
            store.transport.request("DELETE", f"/{prefix}-*")  # type: ignore[attr-defined]
    finally:
        store.close()
        if node is not None:
            node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
