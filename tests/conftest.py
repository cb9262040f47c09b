"""Shared fixtures. Event factories build contract-valid, sealed events."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.schema import SCHEMA_VERSION, seal, set_path

REPO = Path(__file__).resolve().parent.parent
_SEQ = itertools.count(1)

EventFactory = Callable[..., dict[str, Any]]


def build_event(
    kind: str = "process_start",
    *,
    agent_id: str = "agent-test",
    host: str = "pc-01",
    host_ip: str = "10.10.0.5",
    seq: int | None = None,
    timestamp: str = "2026-11-26T06:00:00.000000Z",
    **fields: Any,
) -> dict[str, Any]:
    """A sealed event of ``kind``; ``fields`` are dotted paths (use __ for dots)."""
    event: dict[str, Any] = {
        "@timestamp": timestamp,
        "event": {"kind": "event", "action": "exec", "module": "sekimori"},
        "agent": {"id": agent_id, "type": "sekimori"},
        "host": {"name": host, "ip": [host_ip]},
        "sekimori": {"schema": SCHEMA_VERSION, "seq": seq or next(_SEQ), "kind": kind},
    }
    defaults: dict[str, Any] = {
        "process_start": {
            "event.category": ["process"],
            "event.type": ["start"],
            "process.pid": 4242,
            "process.executable": "/usr/bin/true",
            "process.name": "true",
            "process.command_line": "true",
        },
        "process_end": {"event.action": "exit", "process.pid": 4242, "process.exit_code": 0},
        "network_connection": {
            "event.action": "connection_attempted",
            "network.transport": "tcp",
            "source.ip": host_ip,
            "source.port": 50000,
            "destination.ip": "203.0.113.7",
            "destination.port": 443,
            "process.pid": 4242,
            "process.name": "curl",
        },
        "network_listen": {
            "event.action": "listen",
            "network.transport": "tcp",
            "source.ip": "0.0.0.0",
            "source.port": 4444,
            "process.pid": 4242,
        },
        "heartbeat": {"event.action": "heartbeat"},
    }.get(kind, {})
    for path, value in {**defaults, **{k.replace("__", "."): v for k, v in fields.items()}}.items():
        set_path(event, path, value)
    return seal(event)


@pytest.fixture
def make_event() -> EventFactory:
    return build_event


def batch(events: list[dict[str, Any]], agent_id: str = "agent-test") -> dict[str, Any]:
    return {"schema": "sekimori.batch/1", "agent": {"id": agent_id, "name": "t"}, "events": events}
