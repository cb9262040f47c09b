"""Turn rule matches into alerts, deduplicated per (rule, entity) within a window.

A match for a rule and entity (the host, by default) that already has an alert not closed and
last seen within ``window`` bumps that alert's count, last_seen and event ids; otherwise it
opens a new alert. Alert ids are deterministic (rule, entity, first event), so a retro hunt
over the same events finds the same alert instead of a twin.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any

from agents.schema import get_path, parse_iso
from collector.models import MAX_ALERT_EVENT_IDS, Alert
from collector.store.base import Store
from detections import Match

DEFAULT_WINDOW = timedelta(minutes=10)


def alert_id_for(rule_id: str, entity: str, first_event_id: str) -> str:
    digest = hashlib.sha256(f"{rule_id}\x1f{entity}\x1f{first_event_id}".encode()).hexdigest()
    return f"A-{digest[:12]}"


def entity_of(event: Mapping[str, Any]) -> str:
    """The dedupe entity for an event: its host name (agent id when the host is unnamed)."""
    host = get_path(event, "host.name")
    return str(host) if host else str(get_path(event, "agent.id"))


class AlertManager:
    def __init__(self, store: Store, window: timedelta = DEFAULT_WINDOW) -> None:
        self.store = store
        self.window = window

    def record(self, match: Match, event: Mapping[str, Any]) -> Alert:
        """Fold one match into the alert table and return the alert as stored."""
        at = parse_iso(event["@timestamp"])
        entity = entity_of(event)
        event_id = str(get_path(event, "event.id"))
        existing = self.store.find_open_alert(match.rule_id, entity, at - self.window)
        if existing is not None:
            ids = existing.event_ids
            if event_id in ids:
                return existing
            if len(ids) < MAX_ALERT_EVENT_IDS:
                ids = (*ids, event_id)
            alert = replace(
                existing,
                count=existing.count + 1,
                first_seen=min(existing.first_seen, at),
                last_seen=max(existing.last_seen, at),
                event_ids=ids,
            )
        else:
            alert = Alert(
                id=alert_id_for(match.rule_id, entity, event_id),
                rule_id=match.rule_id,
                title=match.rule_title,
                level=match.level,
                tags=match.tags,
                host=str(get_path(event, "host.name") or entity),
                zone=_zone(event),
                entity=entity,
                count=1,
                first_seen=at,
                last_seen=at,
                event_ids=(event_id,),
                description=match.description,
            )
        self.store.upsert_alert(alert)
        return alert


def _zone(event: Mapping[str, Any]) -> str | None:
    zone = get_path(event, "sekimori.zone.host")
    return str(zone) if zone else None
