"""The store contract every implementation fulfils (one contract test suite runs on all)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple, Protocol

import orjson

from agents.schema import get_path, parse_iso
from collector.models import (
    Alert,
    AlertStatus,
    DeadLetter,
    EventQuery,
    Resolution,
    TriageRecord,
    WriteResult,
)

# The query language a store runs retro hunts in (collector.hunt converts Sigma rules to it).
HuntDialect = Literal["sqlite", "opensearch", "elasticsearch"]


class EncodedEvent(NamedTuple):
    """An enriched event already serialised (``doc``: orjson bytes of the whole event) with
    the columns stores index on. Made once, where the event is validated (possibly in an
    ingest worker process), so the store does not decode or encode it again."""

    id: str
    ts: float  # @timestamp as POSIX seconds
    timestamp: str  # @timestamp as sent
    host: str
    kind: str
    pid: int | None
    agent_id: str
    seq: int
    doc: bytes


def _field(event: dict[str, Any], parent: str, name: str) -> Any:
    """``get_path(event, f"{parent}.{name}")``, fast for the usual nested form."""
    node = event.get(parent)
    if type(node) is dict and name in node and f"{parent}.{name}" not in event:
        return node[name]
    return get_path(event, f"{parent}.{name}")


def encode_event(event: dict[str, Any], leaves: dict[str, Any] | None = None) -> EncodedEvent:
    """The ``EncodedEvent`` of a validated, enriched event (``leaves``: its dotted leaf paths
    -> values, when the validator has them, saves the lookups)."""
    stamp = event["@timestamp"]
    if leaves is not None:
        return EncodedEvent(
            leaves["event.id"],
            parse_iso(stamp).timestamp(),
            stamp,
            leaves["host.name"],
            leaves["sekimori.kind"],
            leaves.get("process.pid"),
            leaves["agent.id"],
            leaves["sekimori.seq"],
            orjson.dumps(event),
        )
    return EncodedEvent(
        _field(event, "event", "id"),
        parse_iso(stamp).timestamp(),
        stamp,
        _field(event, "host", "name"),
        _field(event, "sekimori", "kind"),
        _field(event, "process", "pid"),
        _field(event, "agent", "id"),
        _field(event, "sekimori", "seq"),
        orjson.dumps(event),
    )


class EncodedWriter(Protocol):
    """Optional fast path of a store (SQLite and the search stores have it; wrappers and
    third-party stores need not): ``write_events`` for events already encoded."""

    def write_encoded_events(self, events: Sequence[EncodedEvent]) -> WriteResult: ...


class Store(Protocol):
    hunt_dialect: HuntDialect

    def write_events(self, events: Sequence[dict[str, Any]]) -> WriteResult:
        """Store enriched events; an event whose ``event.id`` exists already is a no-op."""
        ...

    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None: ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]: ...

    def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        """Events matching the query, oldest first."""
        ...

    def iter_events(self, query: EventQuery) -> Iterator[dict[str, Any]]:
        """Every event matching the query's filters (``limit`` ignored), oldest first, paged."""
        ...

    def search_native(self, condition: str, query: EventQuery) -> Iterator[dict[str, Any]]:
        """Like ``iter_events`` and also matching ``condition``, written in ``hunt_dialect``
        (an SQL expression over the ``logs`` view, or a Lucene query string)."""
        ...

    def count_events(self) -> int: ...

    def upsert_alert(self, alert: Alert) -> None: ...

    def get_alert(self, alert_id: str) -> Alert | None: ...

    def find_open_alert(self, rule_id: str, entity: str, not_before: datetime) -> Alert | None:
        """The newest open alert for (rule, entity) whose last_seen >= not_before."""
        ...

    def list_alerts(
        self,
        *,
        status: AlertStatus | None = None,
        host: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Alert]: ...

    def set_alert_status(
        self, alert_id: str, status: AlertStatus, resolution: Resolution | None
    ) -> Alert: ...

    def append_triage(self, record: TriageRecord) -> TriageRecord:
        """Append to the hash-chained triage ledger; returns the record with seq and hashes."""
        ...

    def triage_records(
        self,
        *,
        alert_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[TriageRecord]: ...

    def close(self) -> None: ...
