"""Load benchmark: N concurrent simulated agents over mutual TLS on loopback.

    .venv/bin/python bench/agent_load.py --agents 500 --seconds 30

Starts a collector process (embedded SQLite store, shipped rules), enrolls N agents through
the real ``/v1/enroll`` path (one-time tokens, CSRs), then every agent posts batches of
``--batch`` events in a loop (with ``--pause`` seconds between its batches) for a bounded
time, each over its own TLS session with its own client certificate. Reports events/s
stored, p50/p99 ingest latency, collector peak RSS and errors (target 0).
Results go to stdout as JSON; bench/RESULTS.md records them by hand.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from agents.identity import Identity, enroll  # noqa: E402
from agents.schema import BATCH_SCHEMA, SCHEMA_VERSION, seal, utc_now_iso  # noqa: E402
from collector.registry import Registry  # noqa: E402

SERVE = """
import signal, sys, threading
from pathlib import Path
from collector.service import CollectorConfig, CollectorThread, build_collector
workers = int(sys.argv[3]) if len(sys.argv) > 3 else 0
config = CollectorConfig(data_dir=Path(sys.argv[1]), port=int(sys.argv[2]), ingest_workers=workers)
server = CollectorThread(build_collector(config))
server.start()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
print("listening", flush=True)
stop.wait()
server.stop()
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def event(agent_id: str, seq: int) -> dict[str, Any]:
    return seal(
        {
            "@timestamp": utc_now_iso(),
            "event": {"kind": "event", "action": "heartbeat", "module": "sekimori"},
            "agent": {"id": agent_id, "type": "sekimori"},
            "host": {"name": f"pc-{agent_id[:6]}"},
            "message": f"load {seq}",
            "sekimori": {"schema": SCHEMA_VERSION, "seq": seq, "kind": "heartbeat"},
        }
    )


async def agent_loop(
    identity: Identity,
    url: str,
    args: argparse.Namespace,
    deadline: float,
    latencies: list[float],
    errors: list[str],
) -> int:
    context = ssl.create_default_context(cafile=str(identity.ca_file))
    context.load_cert_chain(str(identity.cert_file))
    seq = 0
    sent = 0
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=context, limit=1)
    ) as session:
        while time.monotonic() < deadline:
            events = [event(identity.agent_id, seq + i + 1) for i in range(args.batch)]
            body = json.dumps(
                {"schema": BATCH_SCHEMA, "agent": {"id": identity.agent_id}, "events": events}
            ).encode()
            started = time.perf_counter()
            try:
                async with session.post(
                    f"{url}/v1/events", data=body, headers={"Content-Type": "application/json"}
                ) as resp:
                    answer = await resp.json()
                    if resp.status != 200 or answer["accepted"] != args.batch:
                        errors.append(f"{resp.status} {str(answer)[:100]}")
                    else:
                        sent += args.batch
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors.append(repr(exc)[:100])
            latencies.append(time.perf_counter() - started)
            seq += args.batch
            await asyncio.sleep(args.pause)
    return sent


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(args: argparse.Namespace, identities: list[Identity], url: str) -> dict[str, Any]:
    latencies: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + args.seconds
    started = time.monotonic()
    sent = await asyncio.gather(
        *(agent_loop(i, url, args, deadline, latencies, errors) for i in identities)
    )
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {
        "agents": len(identities),
        "seconds": round(elapsed, 1),
        "batch": args.batch,
        "events_stored": sum(sent),
        "events_per_s": round(sum(sent) / elapsed),
        "requests": len(latencies),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 1),
        "errors": len(errors),
        "first_errors": errors[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--pause", type=float, default=1.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sekimori-load-") as tmp:
        data, port = Path(tmp) / "collector", free_port()
        log = open(Path(tmp) / "collector.log", "wb")  # noqa: SIM115
        server = subprocess.Popen(
            [sys.executable, "-c", SERVE, str(data), str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        try:
            while "listening" not in (Path(tmp) / "collector.log").read_text():
                time.sleep(0.1)
            url = f"https://127.0.0.1:{port}"
            registry = Registry(data / "registry.db")
            token = registry.create_token(ttl=600, uses=args.agents)
            registry.close()
            t0 = time.monotonic()
            identities = [
                enroll(
                    url,
                    token,
                    state_dir=Path(tmp) / f"a{i}",
                    ca_file=data / "ca.pem",
                    name=f"pc-{i}",
                )
                for i in range(args.agents)
            ]
            enroll_s = time.monotonic() - t0
            result = asyncio.run(run(args, identities, url))
            result["enroll_s"] = round(enroll_s, 1)
            result["collector_peak_rss_mib"] = round(peak_rss_mib(server.pid), 1)
            result["cpus"] = os.cpu_count()
            print(json.dumps(result, indent=2))
        finally:
            server.terminate()
            server.wait(30)
            log.close()


if __name__ == "__main__":
    main()
