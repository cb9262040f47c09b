"""The named queries a ``query`` step runs around an alert.

- ``process_tree``: the alert's processes with ancestors and descendants (see process_tree).
- ``host_connections``: the host's network_connection / network_listen events within ±window.
- ``host_events``: every event of the host within ±window.
- ``destination_history``: earlier connections from the host to the alert's destination IPs
  within ``window`` before the alert ("did this host talk to it before?"). For an alert on
  process events, the destinations are those the alert's processes and their descendants
  connected to (±10m).

All are built on ``Store.query_events`` only, so they work on every store implementation.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, TypeAlias

from agents.schema import get_path, to_iso
from collector.models import Alert
from collector.store.base import Store
from playbooks.anchor import AlertAnchor, alert_anchor, event_time, query_window
from playbooks.model import QueryName, QueryStep
from playbooks.process_tree import (
    ProcessNode,
    ProcessTreeResult,
    process_family_pids,
    process_tree,
)

__all__ = [
    "EventsResult",
    "ProcessNode",
    "ProcessTreeResult",
    "QueryResult",
    "run_query",
]

CONNECTION_KINDS: Final = ("network_connection", "network_listen")
TOP_N: Final = 20
# destination_history for a process alert asks about what its processes contacted within this.
PROCESS_DESTINATION_WINDOW: Final = timedelta(minutes=10)


def _endpoint(event: Mapping[str, Any], side: str) -> str:
    return f"{get_path(event, f'{side}.ip')}:{get_path(event, f'{side}.port')}"


@dataclass(frozen=True, slots=True, kw_only=True)
class EventsResult:
    """A list of events (oldest first) that a query found for the host in ``since..until``."""

    query: QueryName
    host: str
    since: datetime
    until: datetime
    events: tuple[dict[str, Any], ...]
    truncated: bool
    destinations: tuple[str, ...] = ()  # destination_history: the IPs asked about

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(str(get_path(ev, "event.id")) for ev in self.events)

    def counts(self) -> dict[str, int]:
        """Events per ``sekimori.kind``."""
        return dict(Counter(str(get_path(ev, "sekimori.kind")) for ev in self.events))

    def summary(self) -> dict[str, Any]:
        summary: dict[str, Any] = {"counts": self.counts()}
        connections = [
            e for e in self.events if get_path(e, "sekimori.kind") == "network_connection"
        ]
        listens = [e for e in self.events if get_path(e, "sekimori.kind") == "network_listen"]
        if connections:
            top = Counter(_endpoint(e, "destination") for e in connections).most_common(TOP_N)
            summary["destinations"] = dict(top)
        if listens:
            summary["listeners"] = sorted(
                {f"{_endpoint(e, 'source')} {get_path(e, 'process.name') or '?'}" for e in listens}
            )
        if self.query == "destination_history":
            summary["asked_about"] = list(self.destinations)
            summary["prior_contacts"] = {
                ip: sum(1 for e in connections if get_path(e, "destination.ip") == ip)
                for ip in self.destinations
            }
            if connections:
                summary["first_contact"] = to_iso(event_time(connections[0]))
        return summary


QueryResult: TypeAlias = ProcessTreeResult | EventsResult


def _host_events(
    store: Store, anchor: AlertAnchor, window: timedelta, query: QueryName, kinds: tuple[str, ...]
) -> EventsResult:
    since, until = anchor.window(window)
    events, truncated = query_window(store, host=anchor.host, since=since, until=until, kinds=kinds)
    return EventsResult(
        query=query,
        host=anchor.host,
        since=since,
        until=until,
        events=tuple(events),
        truncated=truncated,
    )


def _destinations(store: Store, anchor: AlertAnchor) -> tuple[str, ...]:
    """The alert's destination IPs; for process alerts, those its processes connected to."""
    if anchor.destinations or not anchor.pids:
        return anchor.destinations
    pids = process_family_pids(store, anchor, window=PROCESS_DESTINATION_WINDOW)
    since, until = anchor.window(PROCESS_DESTINATION_WINDOW)
    found, _ = query_window(
        store,
        host=anchor.host,
        since=since,
        until=until,
        kinds=("network_connection",),
        pids=pids,
    )
    seen: dict[str, None] = {}
    for event in found:
        ip = get_path(event, "destination.ip")
        if isinstance(ip, str):
            seen.setdefault(ip, None)
    return tuple(seen)[:TOP_N]


def _destination_history(store: Store, anchor: AlertAnchor, window: timedelta) -> EventsResult:
    since, until = anchor.first - window, anchor.first
    destinations = _destinations(store, anchor)
    events: list[dict[str, Any]] = []
    truncated = False
    if destinations:
        found, truncated = query_window(
            store, host=anchor.host, since=since, until=until, kinds=("network_connection",)
        )
        own = anchor.event_ids
        events = [
            ev
            for ev in found
            if get_path(ev, "destination.ip") in destinations
            and get_path(ev, "event.id") not in own
        ]
    return EventsResult(
        query="destination_history",
        host=anchor.host,
        since=since,
        until=until,
        events=tuple(events),
        truncated=truncated,
        destinations=destinations,
    )


_EventQuery = Callable[[Store, AlertAnchor, QueryStep], QueryResult]
_QUERIES: Final[Mapping[str, _EventQuery]] = {
    "process_tree": lambda store, anchor, step: process_tree(
        store, anchor, window=step.window, max_depth=step.max_depth
    ),
    "host_connections": lambda store, anchor, step: _host_events(
        store, anchor, step.window, "host_connections", CONNECTION_KINDS
    ),
    "host_events": lambda store, anchor, step: _host_events(
        store, anchor, step.window, "host_events", ()
    ),
    "destination_history": lambda store, anchor, step: _destination_history(
        store, anchor, step.window
    ),
}


def run_query(step: QueryStep, alert: Alert, store: Store) -> QueryResult:
    """Run the step's named query around ``alert``."""
    return _QUERIES[step.query](store, alert_anchor(alert, store), step)
