"""An alert's own events, found by id with the alert's time span as the index hint.

``EventQuery(ids=...)`` alone is a full index scan on the SQLite store (its dedupe index is
``(ts, id)``, not ``id``: see ``collector.store.sqlite_events``). An alert knows when its
events happened, so the lookup first asks for its ids within
``[first_seen - MARGIN, last_seen + MARGIN]`` (an index range on every store), and only the
ids not found there (an analytics alert's window can be the connections' start and end rather
than the events' own timestamps) are looked up without a range. The answer is the same as one
unbounded lookup, in store order (time, agent, sequence).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Final

from agents.schema import get_path, parse_iso
from collector.models import Alert, EventQuery
from collector.store.base import Store

MARGIN: Final = timedelta(minutes=10)


def alert_events(store: Store, alert: Alert, limit: int | None = None) -> list[dict[str, Any]]:
    """The stored events among ``alert.event_ids`` (the first ``limit`` of them)."""
    ids = alert.event_ids[: max(limit, 0)] if limit is not None else alert.event_ids
    if not ids:  # an empty ids filter means "no filter" to a store: never send one
        return []
    near = EventQuery(
        ids=ids,
        since=alert.first_seen - MARGIN,
        until=alert.last_seen + MARGIN,
        limit=len(ids),
    )
    events = store.query_events(near)
    found = {get_path(event, "event.id") for event in events}
    missing = tuple(event_id for event_id in ids if event_id not in found)
    if missing:
        events += store.query_events(EventQuery(ids=missing, limit=len(missing)))
        events.sort(key=_store_order)
    return events


def _store_order(event: dict[str, Any]) -> tuple[float, str, int, str]:
    return (
        parse_iso(str(event["@timestamp"])).timestamp(),
        str(get_path(event, "agent.id")),
        int(get_path(event, "sekimori.seq") or 0),
        str(get_path(event, "event.id")),
    )
