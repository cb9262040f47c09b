"""Build ECS events (nested dicts, exactly the fields of :data:`agents.schema.FIELD_TYPES`).

Builders return *unsealed* events without ``sekimori.seq``: the spool assigns the sequence
number when the event enters it and then calls :func:`agents.schema.seal`, because the event
id covers the sequence number.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agents import __version__
from agents.hostinfo import HostInfo
from agents.procfs import MAX_ARGS, MAX_COMMAND_LINE, ProcessInfo, UserResolver, join_args
from agents.schema import SCHEMA_VERSION, EventKind, to_iso
from agents.sources.base import (
    Connection,
    DnsMessage,
    Flow,
    Listen,
    Owner,
    ProcessEnd,
    ProcessStart,
    Record,
    SourceGap,
)

Event = dict[str, Any]
# SourceGap reasons whose count is exact, not a number of loss episodes (network sensor).
_GAP_UNITS = {
    "kernel_drops": "packet(s) dropped by the kernel",
    "flow_table_full": "flow(s) evicted",
}


def iso(epoch: float) -> str:
    return to_iso(datetime.fromtimestamp(epoch, UTC))


def _compact(value: dict[str, Any]) -> dict[str, Any]:
    """Drop None values and empty sub-dicts (the collector refuses nulls for typed fields)."""
    out: dict[str, Any] = {}
    for key, item in value.items():
        cleaned = _compact(item) if isinstance(item, dict) else item
        if cleaned is None or cleaned == {}:
            continue
        out[key] = cleaned
    return out


class EventBuilder:
    """Knows the agent and host identity; turns records into events."""

    def __init__(
        self, *, agent_id: str, agent_name: str, host: HostInfo, user_resolver: UserResolver
    ) -> None:
        self._resolve_user = user_resolver
        self.agent = {
            "id": agent_id,
            "name": agent_name,
            "type": "sekimori",
            "version": __version__,
        }
        self.host = host.as_ecs()

    def _base(
        self,
        kind: EventKind,
        *,
        timestamp: float,
        action: str,
        category: list[str],
        types: list[str],
        dataset: str,
    ) -> Event:
        return {
            "@timestamp": iso(timestamp),
            "event": {
                "kind": "event",
                "category": category,
                "type": types,
                "action": action,
                "module": "sekimori",
                "dataset": dataset,
            },
            "agent": dict(self.agent),
            "host": dict(self.host),
            "sekimori": {"schema": SCHEMA_VERSION, "kind": kind},
        }

    def build(self, record: Record) -> Event:
        """Dispatch on the record type."""
        if isinstance(record, ProcessStart):
            return self.process_start(record)
        if isinstance(record, ProcessEnd):
            return self.process_end(record)
        if isinstance(record, Connection):
            return self.connection(record)
        if isinstance(record, Listen):
            return self.listen(record)
        if isinstance(record, DnsMessage):
            return self.dns(record)
        if isinstance(record, Flow):
            return self.flow(record)
        return self.source_gap(record)

    def process_start(self, rec: ProcessStart) -> Event:
        event = self._base(
            "process_start",
            timestamp=rec.timestamp,
            action="exec",
            category=["process"],
            types=["start"],
            dataset="sekimori.process",
        )
        info = rec.process
        process: dict[str, Any] = _process_fields(info)
        process["entity_id"] = rec.entity_id
        process["hash"] = {"sha256": rec.sha256}
        if rec.parent is not None:
            parent = _process_fields(rec.parent)
            parent["entity_id"] = rec.parent_entity_id
            for key in ("args", "args_count", "working_directory", "start"):
                parent.pop(key, None)
            process["parent"] = parent
        elif info.ppid is not None:
            process["parent"] = {"pid": info.ppid}
        event["process"] = process
        event["user"] = self._user(info.uid)
        tags = []
        if rec.partial:
            tags.append("partial")
            event["message"] = "process exited before /proc could be read completely"
        if len(info.args) > MAX_ARGS or len(join_args(info.args)) >= MAX_COMMAND_LINE:
            tags.append("truncated")
        if tags:
            event["tags"] = tags
        return _compact(event)

    def process_end(self, rec: ProcessEnd) -> Event:
        event = self._base(
            "process_end",
            timestamp=rec.timestamp,
            action="exit",
            category=["process"],
            types=["end"],
            dataset="sekimori.process",
        )
        process: dict[str, Any] = {"pid": rec.pid}
        if rec.process is not None:
            cached = _process_fields(rec.process)
            cached.pop("working_directory", None)
            process.update(cached)
        process["pid"] = rec.pid
        process["exit_code"] = rec.exit_code
        process["end"] = iso(rec.timestamp)
        process["entity_id"] = rec.entity_id
        if rec.ppid:
            process["parent"] = {"pid": rec.ppid}
        event["process"] = process
        if rec.signal is not None:
            event["message"] = f"terminated by signal {rec.signal}"
        return _compact(event)

    def connection(self, rec: Connection) -> Event:
        ingress = rec.direction == "ingress"
        event = self._base(
            "network_connection",
            timestamp=rec.timestamp,
            action="connection_accepted" if ingress else "connection_attempted",
            category=["network"],
            types=["start", "connection"],
            dataset="sekimori.network",
        )
        local = {"ip": rec.local_ip, "port": rec.local_port}
        remote = {"ip": rec.remote_ip, "port": rec.remote_port}
        event["network"] = {
            "transport": rec.transport,
            "type": rec.family,
            "direction": rec.direction,
        }
        event["source"], event["destination"] = (remote, local) if ingress else (local, remote)
        self._owner_fields(event, rec.owner, rec.uid)
        if rec.initial:
            event["tags"] = ["initial_snapshot"]
        return _compact(event)

    def listen(self, rec: Listen) -> Event:
        event = self._base(
            "network_listen",
            timestamp=rec.timestamp,
            action="listen",
            category=["network"],
            types=["start"],
            dataset="sekimori.network",
        )
        event["network"] = {"transport": rec.transport, "type": rec.family}
        event["source"] = {"ip": rec.ip, "port": rec.port}
        self._owner_fields(event, rec.owner, rec.uid)
        if rec.initial:
            event["tags"] = ["initial_snapshot"]
        return _compact(event)

    def dns(self, rec: DnsMessage) -> Event:
        """A DNS query or answer seen by the network sensor (docs/sensor.md)."""
        event = self._base(
            "dns",
            timestamp=rec.timestamp,
            action="dns_answer" if rec.is_answer else "dns_query",
            category=["network"],
            types=["protocol"],
            dataset="sekimori.dns",
        )
        dns: dict[str, Any] = {
            "type": "answer" if rec.is_answer else "query",
            "id": rec.id,
            "question": {"name": rec.question_name, "type": rec.question_type},
        }
        if rec.is_answer:
            dns["response_code"] = rec.response_code
            dns["answers"] = {"data": list(rec.answers) or None}
            dns["resolved_ip"] = list(rec.resolved_ips) or None
        event["dns"] = dns
        event["network"] = {"protocol": "dns", "transport": rec.transport, "type": rec.family}
        event["source"] = {"ip": rec.source_ip, "port": rec.source_port}
        event["destination"] = {"ip": rec.destination_ip, "port": rec.destination_port}
        event["sekimori"]["sensor"] = {"interface": rec.interface}
        if rec.malformed:
            event["tags"] = ["malformed"]
        return _compact(event)

    def flow(self, rec: Flow) -> Event:
        """A flow record of the network sensor: ``flow_end`` or ``flow_update``."""
        event = self._base(
            "network_flow",
            timestamp=rec.end,
            action="flow_end" if rec.final else "flow_update",
            category=["network"],
            types=["connection"],
            dataset="sekimori.flow",
        )
        event["event"]["start"] = iso(rec.start)
        event["event"]["end"] = iso(rec.end)
        event["event"]["duration"] = max(0, round((rec.end - rec.start) * 1e9))
        event["network"] = {
            "transport": rec.transport,
            "type": rec.family,
            "bytes": rec.source_bytes + rec.destination_bytes,
            "packets": rec.source_packets + rec.destination_packets,
        }
        event["source"] = {
            "ip": rec.source_ip,
            "port": rec.source_port,
            "bytes": rec.source_bytes,
            "packets": rec.source_packets,
        }
        event["destination"] = {
            "ip": rec.destination_ip,
            "port": rec.destination_port,
            "bytes": rec.destination_bytes,
            "packets": rec.destination_packets,
        }
        event["sekimori"]["flow"] = {"state": rec.state}
        event["sekimori"]["sensor"] = {"interface": rec.interface}
        if rec.evicted:
            event["tags"] = ["evicted"]
        return _compact(event)

    def source_gap(self, rec: SourceGap) -> Event:
        """A loss the source noticed. The spool fills ``first_seq``/``last_seq`` with this
        event's own sequence number: the loss happened just before it."""
        event = self._base(
            "telemetry_gap",
            timestamp=rec.timestamp,
            action="telemetry_gap",
            category=["host"],
            types=["info"],
            dataset="sekimori.agent",
        )
        event["sekimori"]["gap"] = {"count": rec.count, "reason": f"{rec.source}:{rec.reason}"}
        counted = _GAP_UNITS.get(rec.reason.split(":", 1)[0])
        event["message"] = (
            f"{rec.source} lost telemetry ({rec.reason}): {rec.count} {counted}"
            if counted
            else f"{rec.source} lost telemetry ({rec.reason}): {rec.count} loss episode(s), "
            "each of at least one event"
        )
        return event

    def spool_gap(self, *, first_seq: int, last_seq: int, count: int, reason: str) -> Event:
        event = self._base(
            "telemetry_gap",
            timestamp=_now(),
            action="telemetry_gap",
            category=["host"],
            types=["info"],
            dataset="sekimori.agent",
        )
        event["sekimori"]["gap"] = {
            "first_seq": first_seq,
            "last_seq": last_seq,
            "count": count,
            "reason": reason,
        }
        event["message"] = f"agent dropped {count} event(s), seq {first_seq}..{last_seq}: {reason}"
        return event

    def _user(self, uid: int | None) -> dict[str, Any]:
        if uid is None:
            return {}
        return {"id": str(uid), "name": self._resolve_user(uid)}

    def _owner_fields(self, event: Event, owner: Owner | None, uid: int | None) -> None:
        if owner is not None:
            name = owner.executable.rsplit("/", 1)[-1] if owner.executable else owner.name
            event["process"] = {"pid": owner.pid, "name": name, "executable": owner.executable}
        event["user"] = self._user(uid)

    def heartbeat(self, message: str) -> Event:
        event = self._base(
            "heartbeat",
            timestamp=_now(),
            action="heartbeat",
            category=["host"],
            types=["info"],
            dataset="sekimori.agent",
        )
        event["message"] = message
        return event


def _now() -> float:
    return datetime.now(UTC).timestamp()


def _process_fields(info: ProcessInfo) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "pid": info.pid,
        "name": info.name,
        "executable": info.executable,
        "command_line": info.command_line,
        "working_directory": info.cwd,
        "start": iso(info.start) if info.start is not None else None,
    }
    if info.args:
        fields["args"] = [arg[:MAX_COMMAND_LINE] for arg in info.args[:MAX_ARGS]]
        fields["args_count"] = len(info.args)
    return fields
