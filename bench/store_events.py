"""Synthetic agent telemetry for the store benchmarks (deterministic for a given seed)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from agents.schema import SCHEMA_VERSION, seal, to_iso

T0 = datetime(2026, 11, 26, 0, 0, tzinfo=UTC)
ALLOWED = ("198.51.100.10", "10.99.0.10", "10.99.0.53")  # proxy, collector, DNS: no alerts
COMMANDS = (
    "/usr/bin/python3 /opt/app/worker.py --queue default",
    "/bin/bash -c ls -la /home/staff/documents",
    "/usr/bin/curl -s https://proxy.pref.lg.jp/update.json",
    "/usr/sbin/cron -f",
    "/usr/bin/ssh backup@10.20.0.4 rsync --server -logDtpre.iLsfxC . /srv",
)


def events(
    count: int, hosts: int = 1000, span: timedelta = timedelta(days=1), seed: int = 7
) -> Iterator[dict[str, Any]]:
    """``count`` sealed events from ``hosts`` agents, spread evenly over ``span`` from T0."""
    rng = random.Random(seed)
    step = span / count
    seqs = [0] * hosts
    for n in range(count):
        host = n % hosts
        seqs[host] += 1
        stamp = to_iso(T0 + step * n)
        event: dict[str, Any] = {
            "@timestamp": stamp,
            "agent": {"id": f"agent-{host:05d}", "type": "sekimori"},
            "host": {"name": f"pc-{host:05d}", "ip": [f"10.10.{host // 250}.{host % 250 + 1}"]},
            "sekimori": {"schema": SCHEMA_VERSION, "seq": seqs[host]},
        }
        if rng.random() < 0.6:
            command = rng.choice(COMMANDS)
            event["event"] = {
                "kind": "event",
                "action": "exec",
                "category": ["process"],
                "type": ["start"],
            }
            event["sekimori"]["kind"] = "process_start"
            event["process"] = {
                "pid": rng.randrange(300, 60000),
                "executable": command.split()[0],
                "name": command.split()[0].rsplit("/", 1)[-1],
                "command_line": command,
                "parent": {"pid": 1, "executable": "/usr/lib/systemd/systemd"},
            }
            event["user"] = {"id": "1000", "name": "staff"}
        else:
            event["event"] = {
                "kind": "event",
                "action": "connection_attempted",
                "category": ["network"],
            }
            event["sekimori"]["kind"] = "network_connection"
            event["network"] = {"transport": "tcp", "type": "ipv4", "direction": "egress"}
            event["source"] = {"ip": event["host"]["ip"][0], "port": rng.randrange(32768, 60999)}
            event["destination"] = {"ip": rng.choice(ALLOWED), "port": 8080}
            event["process"] = {"pid": rng.randrange(300, 60000), "name": "curl"}
        yield seal(event)
