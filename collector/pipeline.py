"""The ingest pipeline: validate -> enrich (zones) -> store -> detect -> alerts.

One call handles one batch body and returns the ``IngestResponse`` the agent gets. Only
events stored for the first time are evaluated, so a resend never raises an alert twice.
Rejected events go to the dead-letter table whole, with their reason. Concurrent calls
overlap (validation, enrichment and the store write need no pipeline lock); detection and
alert bookkeeping are serialised (one lock), because alert dedupe needs a consistent view.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, cast

import orjson

from agents.errors import AuthError
from agents.schema import IngestResponse, RejectedEvent, canonical_json, to_iso
from collector.alerts import AlertManager
from collector.ingest_workers import IngestWorkers, enrich_event
from collector.models import Alert, DeadLetter, WriteResult
from collector.store.base import EncodedEvent, EncodedWriter, Store, encode_event
from collector.validate import Limits, ParsedBatch, parse_batch
from collector.zones import ZoneMap
from detections import RuleSet


@dataclass(slots=True)
class IngestStats:
    batches: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    alerts_raised: int = 0
    by_agent_last_seen: dict[str, str] = field(default_factory=dict)


class IngestPipeline:
    def __init__(
        self,
        store: Store,
        zones: ZoneMap,
        rules: RuleSet,
        alerts: AlertManager,
        limits: Limits | None = None,
        *,
        workers: int = 0,
        worker_timeout: float = 120.0,
    ) -> None:
        """``workers``: ingest worker processes for parsing, validation, enrichment and
        matching (see ``collector.ingest_workers``); 0 does all of it in the calling thread.
        Workers are forked now, so build the pipeline before starting threads. A batch no
        worker answers within ``worker_timeout`` seconds fails with ``WorkerError`` (a
        ``StoreError``: nothing written, the agent resends)."""
        self.store = store
        self.zones = zones
        self.rules = rules
        self.alerts = alerts
        self.limits = limits or Limits()
        self.stats = IngestStats()
        self._lock = threading.Lock()
        self._workers = (
            IngestWorkers(workers, zones, rules, self.limits, timeout=worker_timeout)
            if workers
            else None
        )

    def close(self) -> None:
        """Stop the ingest workers, if any (the store is the caller's to close)."""
        if self._workers is not None:
            self._workers.close()
            self._workers = None

    def ingest(self, body: bytes, *, authenticated_agent: str | None = None) -> IngestResponse:
        """Process one batch body. Raises ``InputError`` when the body is refused whole and
        ``AuthError`` when it claims another agent than ``authenticated_agent`` (the identity
        of the client certificate; every event must carry that ``agent.id`` too).

        Thread-safe, and concurrent calls overlap: parsing, validation and zone enrichment
        run outside any lock, and so does the store write (every store is thread-safe and
        a resend is a no-op in every store, so two writers cannot both see an event as new);
        only detection and alert bookkeeping are serialised."""
        if self._workers is not None:
            return self._ingest_prepared(body, authenticated_agent, self._workers)
        batch = parse_batch(body, self.limits)
        if authenticated_agent is not None and batch.agent_id != authenticated_agent:
            raise AuthError(
                f"batch claims agent {batch.agent_id!r} but the connection is "
                f"{authenticated_agent!r}"
            )
        now = datetime.now(UTC)
        ingested = to_iso(now)
        events = self._enrich(batch, ingested)
        if batch.rejected:
            self.store.write_dead_letters(
                [
                    DeadLetter(
                        agent_id=batch.agent_id,
                        event_id=r.event_id,
                        reason=r.reason,
                        raw=dead_letter_text(r.raw),
                        received_at=now,
                    )
                    for r in batch.rejected
                ]
            )
        result = self._write(events, batch.leaves) if events else None
        with self._lock:
            return self._conclude(batch, events, result, ingested)

    def _ingest_prepared(
        self, body: bytes, authenticated_agent: str | None, workers: IngestWorkers
    ) -> IngestResponse:
        """``ingest`` with the CPU work done by a worker process: the same checks, writes,
        alerts and answer (tests/collector/test_ingest_workers.py compares the two)."""
        now = datetime.now(UTC)
        ingested = to_iso(now)
        prepared = workers.prepare(body, ingested)
        if authenticated_agent is not None and prepared.agent_id != authenticated_agent:
            raise AuthError(
                f"batch claims agent {prepared.agent_id!r} but the connection is "
                f"{authenticated_agent!r}"
            )
        if prepared.rejected:
            self.store.write_dead_letters(
                [
                    DeadLetter(
                        agent_id=prepared.agent_id,
                        event_id=event_id,
                        reason=reason,
                        raw=raw,
                        received_at=now,
                    )
                    for _, event_id, reason, raw in prepared.rejected
                ]
            )
        result = self._write_encoded(prepared.events) if prepared.events else None
        raised: list[Alert] = []
        with self._lock:
            if result is not None and result.new_ids:
                for position, matches in prepared.hits:
                    encoded = prepared.events[position]
                    if encoded.id in result.new_ids:
                        event = orjson.loads(encoded.doc)
                        raised.extend(self.alerts.record(match, event) for match in matches)
            rejected: list[RejectedEvent] = [
                {"index": index, "event_id": event_id, "reason": reason}
                for index, event_id, reason, _ in prepared.rejected
            ]
            self._count(prepared.agent_id, result, len(rejected), len(raised), ingested)
        return {
            "accepted": result.inserted if result else 0,
            "duplicates": result.duplicates if result else 0,
            "rejected": rejected,
            "acked_seq": prepared.max_seq,
        }

    @property
    def _encoded_writer(self) -> EncodedWriter | None:
        """The store, if it has the encoded fast path. Asked of the class, not the instance,
        and of the current store: a wrapper that forwards attributes (a test's slow store,
        set after construction) keeps getting write_events."""
        if getattr(type(self.store), "write_encoded_events", None) is None:
            return None
        return cast(EncodedWriter, self.store)

    def _write(
        self, events: list[dict[str, Any]], leaves: list[dict[str, Any]] | None
    ) -> WriteResult:
        writer = self._encoded_writer
        if writer is None:
            return self.store.write_events(events)
        flats: list[dict[str, Any] | None] = list(leaves) if leaves else [None] * len(events)
        encoded = [encode_event(event, flat) for event, flat in zip(events, flats, strict=True)]
        return writer.write_encoded_events(encoded)

    def _write_encoded(self, events: list[EncodedEvent]) -> WriteResult:
        writer = self._encoded_writer
        if writer is not None:
            return writer.write_encoded_events(events)
        return self.store.write_events([orjson.loads(event.doc) for event in events])

    def _count(
        self, agent_id: str, result: WriteResult | None, rejected: int, raised: int, at: str
    ) -> None:
        stats = self.stats
        stats.batches += 1
        stats.accepted += result.inserted if result else 0
        stats.duplicates += result.duplicates if result else 0
        stats.rejected += rejected
        stats.alerts_raised += raised
        stats.by_agent_last_seen[agent_id] = at

    def _enrich(self, batch: ParsedBatch, ingested: str) -> list[dict[str, Any]]:
        zones, all_leaves = self.zones, batch.leaves
        events: list[dict[str, Any]] = []
        for position, (_, event) in enumerate(batch.valid):
            leaves = None if all_leaves is None else all_leaves[position]
            enrich_event(zones, event, leaves, ingested)
            events.append(event)
        return events

    def _conclude(
        self,
        batch: ParsedBatch,
        events: list[dict[str, Any]],
        result: WriteResult | None,
        ingested: str,
    ) -> IngestResponse:
        """Detection on the events stored for the first time, alerts and counters."""
        raised: list[Alert] = []
        if result is not None and result.new_ids:
            new_ids, all_leaves = result.new_ids, batch.leaves
            for position, event in enumerate(events):
                if event["event"]["id"] in new_ids:
                    leaves = None if all_leaves is None else all_leaves[position]
                    raised.extend(self._detect(event, leaves))
        self._count(batch.agent_id, result, len(batch.rejected), len(raised), ingested)
        rejected: list[RejectedEvent] = [
            {"index": r.index, "event_id": r.event_id, "reason": r.reason} for r in batch.rejected
        ]
        return {
            "accepted": result.inserted if result else 0,
            "duplicates": result.duplicates if result else 0,
            "rejected": rejected,
            "acked_seq": batch.max_seq,
        }

    def _detect(self, event: dict[str, Any], leaves: dict[str, Any] | None = None) -> list[Alert]:
        return [self.alerts.record(match, event) for match in self.rules.match(event, leaves)]


def dead_letter_text(value: Any) -> str:
    """The refused event as JSON text that any store can hold: readable UTF-8 where possible,
    ASCII escapes when the event carries lone surrogates (which UTF-8 cannot encode)."""
    text = canonical_json(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text
