"""Merge events, alerts and triage records of a host (or around an alert) in time order."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from agents.errors import ConfigError, NotFoundError
from agents.schema import get_path, parse_iso, to_iso
from collector.models import Alert, EventQuery, TriageRecord
from collector.store.base import Store

EntryKind = Literal["event", "alert", "triage"]
ALERT_MARGIN = timedelta(minutes=15)
_KIND_ORDER = {"event": 0, "alert": 1, "triage": 2}  # an alert follows the event that raised it


@dataclass(frozen=True, slots=True, kw_only=True)
class TimelineEntry:
    at: datetime
    kind: EntryKind
    host: str
    summary: str
    ref: str  # event id, alert id, or triage ledger seq
    level: str = ""
    category: str = ""  # for events: sekimori.kind

    def to_json(self) -> dict[str, Any]:
        return {
            "at": to_iso(self.at),
            "kind": self.kind,
            "host": self.host,
            "summary": self.summary,
            "ref": self.ref,
            "level": self.level,
        }


def summarise_event(event: Mapping[str, Any]) -> str:
    kind = get_path(event, "sekimori.kind")
    pid = get_path(event, "process.pid")
    if kind == "process_start":
        return f"exec pid={pid} {get_path(event, 'process.command_line') or ''}".strip()
    if kind == "process_end":
        return f"exit pid={pid} code={get_path(event, 'process.exit_code')}"
    if kind == "network_connection":
        return (
            f"{get_path(event, 'event.action')} {get_path(event, 'network.transport')} "
            f"{get_path(event, 'source.ip')}:{get_path(event, 'source.port')} -> "
            f"{get_path(event, 'destination.ip')}:{get_path(event, 'destination.port')} "
            f"({get_path(event, 'sekimori.zone.destination') or '?'}) "
            f"by {_process(event)}"
        )
    if kind == "network_listen":
        return (
            f"listen {get_path(event, 'network.transport')} {get_path(event, 'source.ip')}:"
            f"{get_path(event, 'source.port')} by {_process(event)}"
        )
    if kind == "telemetry_gap":
        return (
            f"TELEMETRY GAP: {get_path(event, 'sekimori.gap.count')} events dropped "
            f"(seq {get_path(event, 'sekimori.gap.first_seq')}"
            f"-{get_path(event, 'sekimori.gap.last_seq')})"
        )
    return str(get_path(event, "event.action") or kind)


def _process(event: Mapping[str, Any]) -> str:
    name = get_path(event, "process.name")
    pid = get_path(event, "process.pid")
    if name and pid is not None:
        return f"{name}[{pid}]"
    return str(name or pid or "unknown process")


def _alert_entry(alert: Alert) -> TimelineEntry:
    return TimelineEntry(
        at=alert.first_seen,
        kind="alert",
        host=alert.host,
        summary=f"[{alert.level}] {alert.title} (x{alert.count}, {alert.status})",
        ref=alert.id,
        level=alert.level,
    )


def _triage_entry(record: TriageRecord, host: str) -> TimelineEntry:
    detail = record.detail
    text = detail.get("answer") or detail.get("text") or detail.get("resolution") or ""
    summary = f"{record.actor}: {record.kind} {record.step_id} {text}".strip()
    return TimelineEntry(
        at=record.at, kind="triage", host=host, summary=summary, ref=f"#{record.seq}"
    )


def _order(entry: TimelineEntry) -> tuple[datetime, int]:
    return entry.at, _KIND_ORDER[entry.kind]


def host_timeline(
    store: Store, host: str, since: datetime, until: datetime, limit: int = 10_000
) -> list[TimelineEntry]:
    if until < since:
        raise ConfigError(f"--until ({to_iso(until)}) is before --since ({to_iso(since)})")
    entries = [
        TimelineEntry(
            at=parse_iso(ev["@timestamp"]),
            kind="event",
            host=host,
            summary=summarise_event(ev),
            ref=str(get_path(ev, "event.id")),
            category=str(get_path(ev, "sekimori.kind") or ""),
        )
        for ev in store.query_events(EventQuery(host=host, since=since, until=until, limit=limit))
    ]
    alerts = store.list_alerts(host=host, since=since, until=until, limit=limit)
    entries.extend(_alert_entry(a) for a in alerts)
    hosts_by_alert = {a.id: a.host for a in alerts}
    for record in store.triage_records(since=since, until=until):
        if record.alert_id in hosts_by_alert:
            entries.append(_triage_entry(record, host))
    return sorted(entries, key=_order)


def alert_timeline(
    store: Store, alert_id: str, margin: timedelta = ALERT_MARGIN
) -> list[TimelineEntry]:
    """The alert's host from ``margin`` before first seen to ``margin`` after last seen, plus
    every triage record of the alert whenever it was made."""
    alert = store.get_alert(alert_id)
    if alert is None:
        raise NotFoundError(f"no alert with id {alert_id!r}", remedy="sekimori alerts list")
    entries = host_timeline(store, alert.host, alert.first_seen - margin, alert.last_seen + margin)
    seen = {e.ref for e in entries if e.kind == "triage"}
    for record in store.triage_records(alert_id=alert_id):
        entry = _triage_entry(record, alert.host)
        if entry.ref not in seen:
            entries.append(entry)
    if not any(e.kind == "alert" and e.ref == alert.id for e in entries):
        entries.append(_alert_entry(alert))
    return sorted(entries, key=_order)
