"""Bulk ``create`` of events with per-item results: nothing lost, nothing counted twice.

Each event is sent as ``{"create": {"_index": <month>, "_id": <event.id>}}``, so a resend is a
409 (a duplicate, not an error). Per item: 201 = new; 409 = duplicate; 429/5xx = transient,
retried with exponential backoff; anything else (mapping errors, for instance) = permanent,
returned with the engine's reason for the dead letters.

If transient failures outlast the retries, the items this call did create are deleted again
(the batch is all-or-nothing) and ``StoreError`` asks the agent to resend later: that is the
backpressure path (the collector answers 503 + Retry-After; agents keep spooling).

A retry after an *ambiguous* failure (the connection broke after the request was sent) can see
409 for an event the lost attempt created. Those ids are read back, and an event whose stored
copy equals ours (``event.ingested`` included, which is per ingest call) counts as new, so the
pipeline still runs detection on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from agents.errors import StoreError
from collector.store.search_transport import (
    TRANSIENT_STATUSES,
    ClusterError,
    Transport,
    item_reason,
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    attempts: int = 6  # first try + 5 retries
    backoff: float = 0.2  # seconds, doubled after each failed attempt
    max_backoff: float = 5.0


@dataclass(frozen=True, slots=True)
class Item:
    event_id: str
    index: str
    doc: bytes  # the event as JSON bytes (what is sent)

    @property
    def event(self) -> dict[str, Any]:
        """The event decoded (only needed on the rare paths: read-back claims, refusals)."""
        value: dict[str, Any] = orjson.loads(self.doc)
        return value


@dataclass(slots=True)
class BulkOutcome:
    new_ids: set[str] = field(default_factory=set)
    duplicates: int = 0
    refused: list[tuple[Item, str]] = field(default_factory=list)  # (item, reason)


# Only what ``_sort_out`` reads comes back per item (status, error): a fifth of the default
# answer, less work for the node to build and for us to parse.
_ANSWER_FIELDS: Final = {"filter_path": "errors,items.*.status,items.*.error"}


def _ndjson(items: Sequence[Item]) -> bytes:
    parts: list[bytes] = []
    for item in items:
        # ids are 32 hex characters and index names are ours: no JSON escaping can be needed,
        # but anything else goes through orjson
        if item.event_id.isalnum() and item.index.isascii() and '"' not in item.index:
            action = b'{"create":{"_index":"%s","_id":"%s"}}' % (
                item.index.encode(),
                item.event_id.encode(),
            )
        else:
            action = orjson.dumps({"create": {"_index": item.index, "_id": item.event_id}})
        parts.append(action)
        parts.append(item.doc)
    return b"\n".join(parts) + b"\n"


class BulkWriter:
    def __init__(
        self,
        transport: Transport,
        policy: RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport
        self.policy = policy
        self.sleep = sleep

    def create(self, items: Sequence[Item]) -> BulkOutcome:
        outcome = BulkOutcome()
        pending = list(items)
        maybe_ours: set[str] = set()  # sent in an attempt whose answer was lost
        delay = self.policy.backoff
        last_problem = ""
        for attempt in range(self.policy.attempts):
            if attempt:
                self.sleep(delay)
                delay = min(delay * 2, self.policy.max_backoff)
            try:
                response = self.transport.bulk(_ndjson(pending), params=_ANSWER_FIELDS)
            except ClusterError as exc:
                if not exc.transient:
                    self.undo(outcome.new_ids, items)
                    raise StoreError(f"bulk write refused: {exc}") from exc
                if exc.ambiguous:
                    maybe_ours.update(item.event_id for item in pending)
                last_problem = str(exc)
                continue
            pending, conflicts, last_problem = self._sort_out(pending, response, outcome)
            if conflicts:
                self._claim(conflicts, maybe_ours, outcome)
            if not pending:
                return outcome
        self.undo(outcome.new_ids, items)
        raise StoreError(
            f"the cluster kept failing {len(pending)} of {len(items)} events after "
            f"{self.policy.attempts} attempts ({last_problem}); nothing of the batch was kept",
            remedy="check the cluster's health; agents keep spooling and resend",
        )

    def _sort_out(
        self, pending: list[Item], response: Any, outcome: BulkOutcome
    ) -> tuple[list[Item], list[Item], str]:
        results = response.get("items") if isinstance(response, dict) else None
        if not isinstance(results, list) or len(results) != len(pending):
            raise StoreError(f"malformed bulk response for {len(pending)} items")
        retry: list[Item] = []
        conflicts: list[Item] = []
        problem = ""
        for item, wrapped in zip(pending, results, strict=True):
            result = wrapped.get("create", {})
            status = int(result.get("status", 0))
            if status in (200, 201):
                outcome.new_ids.add(item.event_id)
            elif status == 409:
                conflicts.append(item)
            elif status in TRANSIENT_STATUSES:
                retry.append(item)
                problem = item_reason(result)
            else:
                outcome.refused.append((item, item_reason(result)))
        return retry, conflicts, problem

    def _claim(self, conflicts: list[Item], maybe_ours: set[str], outcome: BulkOutcome) -> None:
        """Sort 409s into duplicates and events a lost attempt of this call created."""
        doubtful = [item for item in conflicts if item.event_id in maybe_ours]
        outcome.duplicates += len(conflicts) - len(doubtful)
        if not doubtful:
            return
        docs = [{"_index": item.index, "_id": item.event_id} for item in doubtful]
        found = self.transport.request("POST", "/_mget", body={"docs": docs}).get("docs", [])
        stored = {doc.get("_id"): doc.get("_source") for doc in found if doc.get("found")}
        for item in doubtful:
            if stored.get(item.event_id) == item.event:
                outcome.new_ids.add(item.event_id)
            else:
                outcome.duplicates += 1

    def undo(self, created: set[str], items: Sequence[Item]) -> None:
        """Best effort: delete what this call created so a failed batch leaves nothing."""
        where = {item.event_id: item.index for item in items}
        ops = [
            orjson.dumps({"delete": {"_index": where[event_id], "_id": event_id}})
            for event_id in sorted(created)
        ]
        if not ops:
            return
        try:
            self.transport.bulk(b"\n".join(ops) + b"\n", params={"refresh": "true"})
        except ClusterError:  # the resend will see them as duplicates; hunts still cover them
            return
