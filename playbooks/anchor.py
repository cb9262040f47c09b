"""Where an alert happened: its host, time span, processes and destinations.

Found by fetching the alert's own events (``collector.event_lookup.alert_events``); if the
store no longer has them, the alert's host and first/last seen times are used instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from agents.schema import get_path, parse_iso
from collector.event_lookup import alert_events
from collector.models import Alert, EventQuery
from collector.store.base import Store

QUERY_LIMIT: Final = 5_000  # events per store query; a result that reaches it is "truncated"
MAX_ANCHOR_EVENTS: Final = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertAnchor:
    host: str
    first: datetime  # earliest alert event (or alert.first_seen)
    last: datetime  # latest alert event (or alert.last_seen)
    events: tuple[dict[str, Any], ...]  # the alert's own events found in the store

    def window(self, around: timedelta) -> tuple[datetime, datetime]:
        return self.first - around, self.last + around

    @property
    def event_ids(self) -> frozenset[str]:
        return frozenset(str(get_path(ev, "event.id")) for ev in self.events)

    @property
    def pids(self) -> tuple[int, ...]:
        """Distinct process ids of the alert's events, in order seen."""
        seen: dict[int, None] = {}
        for event in self.events:
            pid = get_path(event, "process.pid")
            if isinstance(pid, int):
                seen.setdefault(pid, None)
        return tuple(seen)

    @property
    def destinations(self) -> tuple[str, ...]:
        """Distinct destination IPs of the alert's connection events, in order seen."""
        seen: dict[str, None] = {}
        for event in self.events:
            if get_path(event, "sekimori.kind") == "network_connection":
                ip = get_path(event, "destination.ip")
                if isinstance(ip, str):
                    seen.setdefault(ip, None)
        return tuple(seen)


def event_time(event: Mapping[str, Any]) -> datetime:
    return parse_iso(str(event["@timestamp"]))


def alert_anchor(alert: Alert, store: Store) -> AlertAnchor:
    events = alert_events(store, alert, MAX_ANCHOR_EVENTS)
    mine = [ev for ev in events if get_path(ev, "host.name") == alert.host] or events
    if not mine:
        return AlertAnchor(host=alert.host, first=alert.first_seen, last=alert.last_seen, events=())
    times = [event_time(ev) for ev in mine]
    return AlertAnchor(
        host=str(get_path(mine[0], "host.name") or alert.host),
        first=min(times),
        last=max(times),
        events=tuple(mine),
    )


def query_window(
    store: Store,
    *,
    host: str,
    since: datetime | None,
    until: datetime | None,
    kinds: tuple[str, ...] = (),
    pids: tuple[int, ...] = (),
) -> tuple[list[dict[str, Any]], bool]:
    """Events for one host (oldest first) and whether the limit cut the result short."""
    events = store.query_events(
        EventQuery(host=host, since=since, until=until, kinds=kinds, pids=pids, limit=QUERY_LIMIT)
    )
    return events, len(events) >= QUERY_LIMIT
