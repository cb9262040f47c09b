"""The ``Store`` contract on a search engine (OpenSearch or Elasticsearch): shared code.

Events, alerts, triage records and dead letters all live in the cluster (see
``search_mapping`` for the layout). Writes of events go through ``BulkWriter`` (per-item
results, retries, dead letters, backpressure). Alerts and triage records are written with
``refresh=true`` (they are few, and alert dedupe reads its own writes); event indices keep
their refresh interval, and a read refreshes first only if this store wrote since its last
read, so one process always reads its own writes.

The triage ledger uses the record's ``seq`` as ``_id`` with ``op_type=create``: two
collectors appending at once cannot fork the chain; the loser re-reads the head and retries.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from agents.errors import StoreError
from agents.schema import canonical_json, get_path, parse_iso, to_iso
from collector.models import DeadLetter, EventQuery, WriteResult
from collector.store.base import EncodedEvent, HuntDialect
from collector.store.search_alerts import AlertsAndLedger
from collector.store.search_bulk import BulkWriter, Item, RetryPolicy
from collector.store.search_mapping import IndexLayout
from collector.store.search_transport import ClusterError, Transport

PAGE: Final = 5000
EVENT_SORT: Final = [
    {"@timestamp": "asc"},
    {"agent.id": "asc"},
    {"sekimori.seq": "asc"},
    {"event.id": "asc"},
]


class SearchStore(AlertsAndLedger):
    """Shared implementation; subclasses pick the client (``transport``) and ``hunt_dialect``."""

    hunt_dialect: HuntDialect

    def __init__(
        self,
        transport: Transport,
        layout: IndexLayout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.layout = layout or IndexLayout()
        super().__init__(transport, self.layout)
        self._writer = BulkWriter(transport, retry or RetryPolicy())
        self._dirty = False
        self._lock = threading.Lock()
        self._last_letter = 0
        self._call(self._install)
        self.apply_retention()

    # -- setup ----------------------------------------------------------------------------
    def _install(self) -> None:
        layout = self.layout
        self.transport.request(
            "PUT", f"/_index_template/{layout.prefix}-events", body=layout.events_template()
        )
        for name, body in layout.side_indices().items():
            try:
                self.transport.request("PUT", f"/{name}", body=body)
            except ClusterError as exc:
                if exc.status != 400 or "already_exists" not in exc.reason:
                    raise

    def apply_retention(self, now: datetime | None = None) -> list[str]:
        """Delete event indices older than ``retention_days``; returns the deleted names."""
        if self.layout.retention_days is None:
            return []
        names = list(
            self._call(
                self.transport.request,
                "GET",
                f"/_cat/indices/{self.layout.events_pattern}",
                params={"format": "json", "h": "index"},
            )
        )
        expired = self.layout.expired([row["index"] for row in names], now)
        for name in expired:
            self._call(self.transport.request, "DELETE", f"/{name}")
        return expired

    # -- events ---------------------------------------------------------------------------
    def write_events(self, events: Sequence[dict[str, Any]]) -> WriteResult:
        # only id, @timestamp (as sent: the cluster judges it) and the doc are used here
        encoded = [
            EncodedEvent(
                str(get_path(ev, "event.id")),
                0.0,
                str(ev["@timestamp"]),
                "",
                "",
                None,
                "",
                0,
                orjson.dumps(ev),
            )
            for ev in events
        ]
        return self.write_encoded_events(encoded)

    def write_encoded_events(self, events: Sequence[EncodedEvent]) -> WriteResult:
        """``write_events`` for events encoded already (``doc`` is sent as it is)."""
        items: list[Item] = []
        seen: set[str] = set()
        twins = 0
        for event in events:
            event_id = str(event.id)
            if event_id in seen:
                twins += 1
                continue
            seen.add(event_id)
            items.append(Item(event_id, self.layout.events_index(event.timestamp), event.doc))
        if not items:
            return WriteResult(new_ids=frozenset(), duplicates=twins)
        try:
            outcome = self._writer.create(items)
        finally:
            with self._lock:
                self._dirty = True
        if outcome.refused:
            now = datetime.now(UTC)
            letters = [
                DeadLetter(
                    agent_id=str(get_path(item.event, "agent.id")),
                    event_id=item.event_id,
                    reason=f"refused by the store: {reason}",
                    raw=canonical_json(item.event),
                    received_at=now,
                )
                for item, reason in outcome.refused
            ]
            try:
                self.write_dead_letters(letters)
            except StoreError:
                self._writer.undo(outcome.new_ids, items)  # all-or-nothing, the agent resends
                raise
        return WriteResult(
            new_ids=frozenset(outcome.new_ids),
            duplicates=outcome.duplicates + twins,
            dead_lettered=len(outcome.refused),
        )

    def _refresh_events(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, False
        if dirty:
            self._call(
                self.transport.request,
                "POST",
                f"/{self.layout.events_pattern}/_refresh",
                params={"allow_no_indices": "true"},
            )

    @staticmethod
    def _filters(query: EventQuery) -> list[dict[str, Any]]:
        filters: list[dict[str, Any]] = []
        if query.host is not None:
            filters.append({"term": {"host.name": query.host}})
        if query.since is not None or query.until is not None:
            window: dict[str, str] = {}
            if query.since is not None:
                window["gte"] = to_iso(query.since)
            if query.until is not None:
                window["lte"] = to_iso(query.until)
            filters.append({"range": {"@timestamp": window}})
        for path, values in (
            ("sekimori.kind", query.kinds),
            ("process.pid", query.pids),
            ("event.id", query.ids),
        ):
            if values:
                filters.append({"terms": {path: list(values)}})
        return filters

    def _scan(self, filters: list[dict[str, Any]], limit: int | None) -> Iterator[dict[str, Any]]:
        self._refresh_events()
        after: list[Any] | None = None
        left = limit
        while left is None or left > 0:
            size = PAGE if left is None else min(PAGE, left)
            body: dict[str, Any] = {
                "size": size,
                "sort": EVENT_SORT,
                "query": {"bool": {"filter": filters}},
                "track_total_hits": False,
            }
            if after is not None:
                body["search_after"] = after
            hits = self._search(self.layout.events_pattern, body)
            for hit in hits:
                yield hit["_source"]
            if left is not None:
                left -= len(hits)
            if len(hits) < size:
                return
            after = hits[-1]["sort"]

    def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        return list(self._scan(self._filters(query), query.limit))

    def iter_events(self, query: EventQuery) -> Iterator[dict[str, Any]]:
        return self._scan(self._filters(query), None)

    def search_native(self, condition: str, query: EventQuery) -> Iterator[dict[str, Any]]:
        lucene = {"query_string": {"query": condition, "allow_leading_wildcard": True}}
        return self._scan([*self._filters(query), lucene], None)

    def count_events(self) -> int:
        self._refresh_events()
        answer = self._call(
            self.transport.request,
            "GET",
            f"/{self.layout.events_pattern}/_count",
            params={"allow_no_indices": "true"},
        )
        return int(answer["count"])

    def max_seq(self, agent_id: str) -> int:
        """Highest stored sequence number for an agent (0 if none)."""
        self._refresh_events()
        body = {
            "size": 0,
            "query": {"term": {"agent.id": agent_id}},
            "aggs": {"top": {"max": {"field": "sekimori.seq"}}},
        }
        answer = self._call(
            self.transport.request, "POST", f"/{self.layout.events_pattern}/_search", body=body
        )
        value = answer.get("aggregations", {}).get("top", {}).get("value")
        return int(value or 0)

    # -- dead letters ---------------------------------------------------------------------
    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        lines: list[bytes] = []
        for letter in letters:
            doc = {
                "n": self._next_letter_number(),
                "agent_id": letter.agent_id,
                "event_id": letter.event_id,
                "reason": letter.reason,
                "raw": letter.raw,
                "received_at": to_iso(letter.received_at),
            }
            lines += [
                orjson.dumps({"index": {"_index": self.layout.dead_letters}}),
                orjson.dumps(doc),
            ]
        answer = self._call(
            self.transport.bulk, b"\n".join(lines) + b"\n", params={"refresh": "true"}
        )
        if answer.get("errors"):
            raise StoreError(f"dead letters not written: {orjson.dumps(answer['items'])[:500]!r}")

    def _next_letter_number(self) -> int:
        """Monotonic within this process, time-ordered across processes (newest first)."""
        with self._lock:
            self._last_letter = max(self._last_letter + 1, time.time_ns())
            return self._last_letter

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        body = {"size": limit, "sort": [{"n": "desc"}], "query": {"match_all": {}}}
        return [
            DeadLetter(
                agent_id=doc["agent_id"],
                event_id=doc["event_id"],
                reason=doc["reason"],
                raw=doc["raw"],
                received_at=parse_iso(doc["received_at"]),
            )
            for doc in (hit["_source"] for hit in self._search(self.layout.dead_letters, body))
        ]

    def close(self) -> None:
        self.transport.close()


def hits_of(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(answer.get("hits", {}).get("hits", []))
