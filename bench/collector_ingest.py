"""Ingest throughput through the collector's HTTPS API (mutual TLS) into SQLite.

    .venv/bin/python bench/collector_ingest.py --events 200000 --agents 8 --workers 2

Starts a real collector process (``CollectorConfig``: SQLite in a temporary data dir, shipped
rules, ``--workers`` ingest worker processes) on loopback, enrolls ``--agents`` agents through
``/v1/enroll``, and gives each agent its share of ``bench/store_events.py`` events (re-owned and
re-sealed), in batches of 500 built before the clock starts. Then every agent posts its
batches one after another over its own TLS session, all agents at once, and every answer is
checked (HTTP 200, ``accepted`` == batch size). The load generator shares the machine's cores
with the collector.

Same-run baseline: ``bench/store_ingest.py``'s in-memory pipeline run (same events, same
workers, concurrency = agents) right after, so the ratio shows what the HTTPS server costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agents.identity import Identity, enroll  # noqa: E402
from agents.schema import BATCH_SCHEMA, seal  # noqa: E402
from bench.agent_load import SERVE, free_port  # noqa: E402
from bench.store_events import events as make_events  # noqa: E402
from collector.registry import Registry  # noqa: E402

BATCH = 500


def agent_bodies(identities: list[Identity], count: int) -> list[list[bytes]]:
    """Each agent's batches: the generator's hosts mapped onto the enrolled agents."""
    per_agent: list[list[dict[str, Any]]] = [[] for _ in identities]
    for event in make_events(count, hosts=len(identities)):
        index = int(event["agent"]["id"].rsplit("-", 1)[1])
        event["agent"]["id"] = identities[index].agent_id
        del event["event"]["id"]
        per_agent[index].append(seal(event))
    bodies: list[list[bytes]] = []
    for identity, events in zip(identities, per_agent, strict=True):
        envelope = {"schema": BATCH_SCHEMA, "agent": {"id": identity.agent_id}}
        bodies.append(
            [
                orjson.dumps({**envelope, "events": events[start : start + BATCH]})
                for start in range(0, len(events), BATCH)
            ]
        )
    return bodies


async def send(identity: Identity, url: str, bodies: list[bytes]) -> int:
    context = ssl.create_default_context(cafile=str(identity.ca_file))
    context.load_cert_chain(str(identity.cert_file))
    stored = 0
    connector = aiohttp.TCPConnector(ssl=context, limit=1)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for body in bodies:
            expected = body.count(b'"seq":')
            async with session.post(
                f"{url}/v1/events", data=body, headers={"Content-Type": "application/json"}
            ) as resp:
                answer = await resp.json()
                if resp.status != 200 or answer.get("accepted") != expected:
                    raise RuntimeError(f"batch not stored: {resp.status} {str(answer)[:200]}")
                stored += expected
    return stored


async def send_all(identities: list[Identity], url: str, bodies: list[list[bytes]]) -> int:
    counts = await asyncio.gather(
        *(send(i, url, b) for i, b in zip(identities, bodies, strict=True))
    )
    return sum(counts)


def through_https(args: argparse.Namespace, tmp: Path) -> tuple[float, int]:
    data, port = tmp / "collector", free_port()
    log_path = tmp / "collector.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(data), str(port), str(args.workers)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        try:
            while "listening" not in log_path.read_text():
                if server.poll() is not None:
                    raise RuntimeError(f"collector exited: {log_path.read_text()[-2000:]}")
                time.sleep(0.1)
            url = f"https://127.0.0.1:{port}"
            registry = Registry(data / "registry.db")
            token = registry.create_token(ttl=600, uses=args.agents)
            registry.close()
            identities = [
                enroll(url, token, state_dir=tmp / f"a{i}", ca_file=data / "ca.pem", name=f"pc-{i}")
                for i in range(args.agents)
            ]
            bodies = agent_bodies(identities, args.events)
            start = time.perf_counter()
            stored = asyncio.run(send_all(identities, url, bodies))
            elapsed = time.perf_counter() - start
        finally:
            server.terminate()
            server.wait(60)
    return elapsed, stored


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--agents", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sekimori-ingest-") as tmp:
        elapsed, stored = through_https(args, Path(tmp))
    if stored != args.events:
        raise RuntimeError(f"stored {stored} of {args.events} events")
    https = stored / elapsed
    print(
        f"HTTPS (mTLS) -> collector -> SQLite, {args.agents} agents, {args.workers} workers:"
        f" {stored} events in {elapsed:.2f} s = {https:,.0f} events/s ({os.cpu_count()} CPUs)"
    )
    from bench.store_ingest import bodies as pipeline_bodies
    from bench.store_ingest import through_pipeline
    from collector.store import open_store

    with tempfile.TemporaryDirectory(prefix="sekimori-ingest-") as tmp:
        store = open_store(f"sqlite://{tmp}/bench.db")
        batches = pipeline_bodies(args.events)
        seconds = through_pipeline(store, batches, False, args.workers, args.agents)
        store.close()
    pipeline = args.events / seconds
    print(
        f"baseline, same run: pipeline without HTTPS {pipeline:,.0f} events/s;"
        f" HTTPS / pipeline = {https / pipeline:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
