"""Ingest throughput through the collector pipeline (validate, zones, store, detect, alerts).

    .venv/bin/python bench/store_ingest.py sqlite --events 200000 [--profile]
    .venv/bin/python bench/store_ingest.py sqlite --events 200000 --workers 2 --concurrency 4
    .venv/bin/python bench/store_ingest.py opensearch --events 100000   # starts a node
    .venv/bin/python bench/store_ingest.py opensearch --url http://127.0.0.1:9200

For a search engine the baseline is ``helpers.bulk`` (create op, same _id, same mapping) of the
same enriched events into the same node in the same run; the ratio is what the pipeline keeps.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store_events import events as make_events
from collector.alerts import AlertManager
from collector.pipeline import IngestPipeline
from collector.store import open_store
from collector.store.base import Store
from collector.zones import example_zones_path, load_zones
from detections import default_rules_dir, load_rules

BATCH = 500


def bodies(count: int) -> list[bytes]:
    by_agent: dict[str, list[dict[str, Any]]] = {}
    out: list[bytes] = []
    for event in make_events(count, hosts=200):
        agent = event["agent"]["id"]
        pending = by_agent.setdefault(agent, [])
        pending.append(event)
        if len(pending) == BATCH:
            out.append(
                orjson.dumps(
                    {
                        "schema": "sekimori.batch/1",
                        "agent": {"id": agent, "name": agent},
                        "events": pending,
                    }
                )
            )
            by_agent[agent] = []
    for agent, pending in by_agent.items():
        if pending:
            out.append(
                orjson.dumps(
                    {
                        "schema": "sekimori.batch/1",
                        "agent": {"id": agent, "name": agent},
                        "events": pending,
                    }
                )
            )
    return out


def _cpu_seconds() -> float:
    """CPU time of this process (all threads) and of its finished children (workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def through_pipeline(
    store: Store, batches: list[bytes], profile: bool, workers: int = 0, concurrency: int = 1
) -> float:
    """Seconds to ingest ``batches``: ``concurrency`` threads call ``ingest`` (as the server's
    executor does for concurrent agents), ``workers`` ingest worker processes do the CPU work."""
    zones = load_zones(example_zones_path())
    rules = load_rules([default_rules_dir()])
    # workers only when asked: the same script then also measures older pipelines (before/after)
    extra: dict[str, Any] = {"workers": workers} if workers else {}
    pipeline = IngestPipeline(store, zones, rules, AlertManager(store), **extra)
    profiler = cProfile.Profile() if profile else None
    cpu_start = _cpu_seconds()
    start = time.perf_counter()
    if profiler:
        profiler.enable()
    if concurrency == 1:
        for body in batches:
            pipeline.ingest(body)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            for answer in pool.map(pipeline.ingest, batches):
                assert not answer["rejected"], answer["rejected"][:3]
    if profiler:
        profiler.disable()
    elapsed = time.perf_counter() - start
    if workers:
        pipeline.close()  # joins the workers, so their CPU time is counted below
    cpu = _cpu_seconds() - cpu_start
    events = sum(body.count(b'"seq":') for body in batches)
    print(
        f"  CPU {cpu:.2f} s for {events} events = {events / cpu:,.0f} events per CPU-second"
        f" (wall {elapsed:.2f} s; on a shared machine CPU time is the steadier figure)"
    )
    if profiler:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(25)
        print(text.getvalue())
    return elapsed


def raw_bulk(url: str, batches: list[bytes], prefix: str, threads: int = 1) -> float:
    """Seconds for opensearch-py's own bulk helper to create the same documents: sequential
    ``helpers.bulk``, or ``helpers.parallel_bulk`` with ``threads`` threads (the like-for-like
    baseline when the pipeline is driven by that many concurrent callers)."""
    from opensearchpy import OpenSearch, helpers

    from collector.store.search_mapping import IndexLayout

    zones = load_zones(example_zones_path())
    docs = []
    for body in batches:
        for event in orjson.loads(body)["events"]:
            zones.enrich(event)
            event.setdefault("event", {})["ingested"] = "2026-11-26T12:00:00.000000Z"
            docs.append(event)
    layout = IndexLayout(prefix=prefix)
    client = OpenSearch(hosts=[url], timeout=60)
    client.indices.put_index_template(name=f"{prefix}-events", body=layout.events_template())
    actions = (
        {
            "_op_type": "create",
            "_index": layout.events_index(d["@timestamp"]),
            "_id": d["event"]["id"],
            "_source": d,
        }
        for d in docs
    )
    start = time.perf_counter()
    if threads == 1:
        _, errors = helpers.bulk(client, actions, chunk_size=BATCH, raise_on_error=False)
    else:
        results = helpers.parallel_bulk(
            client, actions, thread_count=threads, chunk_size=BATCH, raise_on_error=False
        )
        errors = [info for ok, info in results if not ok]
    elapsed = time.perf_counter() - start
    assert not errors, errors[:3]
    client.indices.delete(index=f"{prefix}-*")
    client.indices.delete_index_template(name=f"{prefix}-events")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("store", choices=["sqlite", "opensearch", "elasticsearch"])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--url", help="an existing node (default: start one with tests/nodes.py)")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument(
        "--workers", type=int, default=0, help="ingest worker processes (default 0: none)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=1, help="threads calling ingest (concurrent agents)"
    )
    args = parser.parse_args()
    batches = bodies(args.events)
    node = None
    how = f"workers={args.workers} concurrency={args.concurrency}"
    if args.store == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            store = open_store(f"sqlite://{tmp}/bench.db")
            elapsed = through_pipeline(store, batches, args.profile, args.workers, args.concurrency)
            assert store.count_events() == args.events
            groups, written = getattr(store, "group_commits", (0, 0))
            print(f"  group commit: {written} batches in {groups} transactions")
            store.close()
        print(
            f"sqlite pipeline ({how}): {args.events} events in {elapsed:.2f} s"
            f" = {args.events / elapsed:,.0f} events/s"
        )
        return 0
    url = args.url
    if url is None:
        from tests.nodes import start_node

        node = start_node(args.store, Path(tempfile.mkdtemp(prefix="sekimori-bench-")))
        url = node.url
    try:
        prefix = f"bench{uuid.uuid4().hex[:6]}"
        store = open_store(f"{args.store}+{url}", prefix=prefix)
        warm = bodies(5_000)
        through_pipeline(open_store(f"{args.store}+{url}", prefix=prefix + "w"), warm, False)
        raw_bulk(url, warm, prefix + "rw")
        results = []
        baseline = "helpers.bulk" if args.concurrency == 1 else f"parallel_bulk x{args.concurrency}"
        for round_ in range(2):
            raw = raw_bulk(url, batches, f"{prefix}r{round_}", args.concurrency)
            pipe_store = open_store(f"{args.store}+{url}", prefix=f"{prefix}p{round_}")
            pipe = through_pipeline(
                pipe_store, batches, args.profile and round_ == 1, args.workers, args.concurrency
            )
            assert pipe_store.count_events() == args.events
            results.append((raw, pipe))
            print(
                f"round {round_}: raw {baseline} {args.events / raw:,.0f} ev/s,"
                f" pipeline {args.events / pipe:,.0f} ev/s, ratio {raw / pipe:.2f}"
            )
        raw, pipe = min(r for r, _ in results), min(p for _, p in results)
        print(
            f"{args.store} ({how}): best raw {args.events / raw:,.0f} ev/s,"
            f" best pipeline {args.events / pipe:,.0f} ev/s, ratio {raw / pipe:.2f}"
        )
        store.close()
    finally:
        if node is not None:
            node.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
