"""The ingest pipeline: validate -> enrich (zones) -> store -> detect -> alerts.

One call handles one batch body and returns the ``IngestResponse`` the agent gets. Only
events stored for the first time are evaluated, so a resend never raises an alert twice.
Rejected events go to the dead-letter table whole, with their reason. Calls are serialised
(one lock): SQLite has one writer anyway, and alert dedupe needs a consistent view.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from agents.errors import AuthError
from agents.schema import IngestResponse, RejectedEvent, canonical_json, set_path, to_iso
from collector.alerts import AlertManager
from collector.models import Alert, DeadLetter
from collector.store.base import Store
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
    ) -> None:
        self.store = store
        self.zones = zones
        self.rules = rules
        self.alerts = alerts
        self.limits = limits or Limits()
        self.stats = IngestStats()
        self._lock = threading.Lock()

    def ingest(self, body: bytes, *, authenticated_agent: str | None = None) -> IngestResponse:
        """Process one batch body. Raises ``InputError`` when the body is refused whole and
        ``AuthError`` when it claims another agent than ``authenticated_agent`` (the identity
        of the client certificate; every event must carry that ``agent.id`` too)."""
        batch = parse_batch(body, self.limits)
        if authenticated_agent is not None and batch.agent_id != authenticated_agent:
            raise AuthError(
                f"batch claims agent {batch.agent_id!r} but the connection is "
                f"{authenticated_agent!r}"
            )
        with self._lock:
            return self._ingest(batch)

    def _ingest(self, batch: ParsedBatch) -> IngestResponse:
        now = datetime.now(UTC)
        ingested = to_iso(now)
        events: list[dict[str, Any]] = []
        for _, event in batch.valid:
            self.zones.enrich(event)
            set_path(event, "event.ingested", ingested)
            events.append(event)
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
        result = self.store.write_events(events) if events else None
        raised: list[Alert] = []
        if result is not None:
            for event in events:
                if event["event"]["id"] in result.new_ids:
                    raised.extend(self._detect(event))
        stats = self.stats
        stats.batches += 1
        stats.accepted += result.inserted if result else 0
        stats.duplicates += result.duplicates if result else 0
        stats.rejected += len(batch.rejected)
        stats.alerts_raised += len(raised)
        stats.by_agent_last_seen[batch.agent_id] = ingested
        rejected: list[RejectedEvent] = [
            {"index": r.index, "event_id": r.event_id, "reason": r.reason} for r in batch.rejected
        ]
        return {
            "accepted": result.inserted if result else 0,
            "duplicates": result.duplicates if result else 0,
            "rejected": rejected,
            "acked_seq": batch.max_seq,
        }

    def _detect(self, event: dict[str, Any]) -> list[Alert]:
        return [self.alerts.record(match, event) for match in self.rules.match(event)]


def dead_letter_text(value: Any) -> str:
    """The refused event as JSON text that any store can hold: readable UTF-8 where possible,
    ASCII escapes when the event carries lone surrogates (which UTF-8 cannot encode)."""
    text = canonical_json(value)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return text
