"""Records the collector keeps besides raw events: alerts, triage records, dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal

AlertStatus = Literal["open", "in_progress", "closed"]
Resolution = Literal["true_positive", "false_positive", "benign"]
RESOLUTIONS: Final[tuple[str, ...]] = ("true_positive", "false_positive", "benign")
Level = Literal["informational", "low", "medium", "high", "critical"]

# How many matching event ids one alert keeps (the count keeps going past it).
MAX_ALERT_EVENT_IDS: Final = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Alert:
    id: str
    rule_id: str
    title: str
    level: str
    tags: tuple[str, ...]
    host: str
    zone: str | None
    entity: str  # the dedupe key besides the rule (host name by default)
    count: int
    first_seen: datetime
    last_seen: datetime
    event_ids: tuple[str, ...]
    status: AlertStatus = "open"
    resolution: Resolution | None = None
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule_id": self.rule_id,
            "title": self.title,
            "level": self.level,
            "tags": list(self.tags),
            "host": self.host,
            "zone": self.zone,
            "entity": self.entity,
            "count": self.count,
            "first_seen": _iso(self.first_seen),
            "last_seen": _iso(self.last_seen),
            "event_ids": list(self.event_ids),
            "status": self.status,
            "resolution": self.resolution,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class TriageRecord:
    """One recorded analyst step: who did what, when, about which alert."""

    alert_id: str
    playbook_id: str
    step_id: str
    kind: str
    actor: str
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # assigned by the store
    prev_hash: str = ""  # hash chain, assigned by the store
    hash: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "alert_id": self.alert_id,
            "playbook_id": self.playbook_id,
            "step_id": self.step_id,
            "kind": self.kind,
            "actor": self.actor,
            "at": _iso(self.at),
            "detail": self.detail,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A rejected event, kept whole with the reason it was refused."""

    agent_id: str
    event_id: str | None
    reason: str
    raw: str  # the event as received (JSON text), never lost
    received_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class EventQuery:
    """Filter for event reads (timelines, playbook queries)."""

    host: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    kinds: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()
    ids: tuple[str, ...] = ()
    limit: int = 10_000


@dataclass(frozen=True, slots=True)
class WriteResult:
    new_ids: frozenset[str]  # ids stored by this write (not seen before)
    duplicates: int
    # Events the store refused one by one (a search engine's per-item mapping error): each
    # was written to the dead letters with the engine's reason, so it is accounted for.
    dead_lettered: int = 0

    @property
    def inserted(self) -> int:
        return len(self.new_ids)


def _iso(moment: datetime) -> str:
    from agents.schema import to_iso

    return to_iso(moment)
