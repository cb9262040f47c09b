"""Findings -> ordinary alerts, one alert per finding spell (the collector.silence pattern).

A spell is one continuous stretch of a finding for an entity (a beacon pair, a source and a
domain, a scanning source): runs that keep finding it within ``gap`` of its last sighting
update the same alert (count, last_seen, event ids). Alert ids are deterministic
(:func:`collector.alerts.alert_id_for` over the rule, the entity and the spell's first event),
so a restarted collector finds its open alert again. An alert an analyst closed is never
reopened: while its spell goes on, later runs leave it alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from collector.alerts import alert_id_for
from collector.models import MAX_ALERT_EVENT_IDS, Alert
from collector.store.base import Store


@dataclass(frozen=True, slots=True, kw_only=True)
class Finding:
    """One analytic's verdict over the window, ready to become (or update) an alert."""

    rule_id: str
    title: str
    level: str
    tags: tuple[str, ...]
    host: str
    zone: str | None
    entity: str
    count: int  # contributing events (connections, queries, distinct values)
    first_seen: datetime
    last_seen: datetime
    event_ids: tuple[str, ...]  # oldest first, capped by the analytic
    description: str


@dataclass(slots=True)
class _Spell:
    alert_id: str
    last_seen: datetime
    closed: bool


class AlertSpells:
    """Raises and refreshes analytics alerts; remembers spells between runs."""

    def __init__(self, store: Store, gap: timedelta) -> None:
        self.store = store
        self.gap = gap
        self._spells: dict[tuple[str, str], _Spell] = {}

    def record(self, finding: Finding) -> Alert | None:
        """Fold a finding into its spell's alert; None when the spell's alert is closed."""
        key = (finding.rule_id, finding.entity)
        spell = self._spells.get(key)
        if spell is not None and finding.first_seen > spell.last_seen + self.gap:
            spell = None  # the previous spell ended: this is a new one
        if spell is None:
            spell = self._adopt(finding)
            self._spells[key] = spell
        spell.last_seen = max(spell.last_seen, finding.last_seen)
        if spell.closed:
            return None
        existing = self.store.get_alert(spell.alert_id)
        if existing is not None and existing.status == "closed":
            spell.closed = True
            return None
        alert = _merged(existing, finding) if existing is not None else _new(spell, finding)
        if alert != existing:
            self.store.upsert_alert(alert)
        return alert

    def forget(self, before: datetime) -> None:
        """Drop spells last seen before ``before`` (they ended; bounded memory)."""
        self._spells = {k: v for k, v in self._spells.items() if v.last_seen >= before}

    def __len__(self) -> int:
        return len(self._spells)

    def _adopt(self, finding: Finding) -> _Spell:
        """The spell a finding continues after a restart (an open or closed alert seen within
        the gap), or a new one named after the finding's first event."""
        not_before = finding.first_seen - self.gap
        open_alert = self.store.find_open_alert(finding.rule_id, finding.entity, not_before)
        if open_alert is not None:
            return _Spell(open_alert.id, open_alert.last_seen, closed=False)
        for alert in self.store.list_alerts(
            status="closed", host=finding.host, since=not_before, limit=1000
        ):
            if alert.rule_id == finding.rule_id and alert.entity == finding.entity:
                return _Spell(alert.id, alert.last_seen, closed=True)
        first = finding.event_ids[0] if finding.event_ids else finding.first_seen.isoformat()
        return _Spell(
            alert_id_for(finding.rule_id, finding.entity, first), finding.last_seen, closed=False
        )


def _new(spell: _Spell, finding: Finding) -> Alert:
    return Alert(
        id=spell.alert_id,
        rule_id=finding.rule_id,
        title=finding.title,
        level=finding.level,
        tags=finding.tags,
        host=finding.host,
        zone=finding.zone,
        entity=finding.entity,
        count=finding.count,
        first_seen=finding.first_seen,
        last_seen=finding.last_seen,
        event_ids=finding.event_ids[:MAX_ALERT_EVENT_IDS],
        description=finding.description,
    )


def _merged(existing: Alert, finding: Finding) -> Alert:
    ids = list(existing.event_ids)
    known = set(ids)
    ids.extend(i for i in finding.event_ids if i not in known)
    return replace(
        existing,
        count=max(existing.count, finding.count),
        first_seen=min(existing.first_seen, finding.first_seen),
        last_seen=max(existing.last_seen, finding.last_seen),
        event_ids=tuple(ids[:MAX_ALERT_EVENT_IDS]),
        description=finding.description,
    )
