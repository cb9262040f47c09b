"""Alerts and the hash-chained triage ledger on a search engine (base of ``SearchStore``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Final, TypeVar

from agents.errors import NotFoundError, StoreError
from agents.schema import parse_iso, to_iso
from collector.ledger import GENESIS_HASH, triage_hash
from collector.models import (
    MAX_ALERT_EVENT_IDS,
    Alert,
    AlertStatus,
    Resolution,
    TriageRecord,
)
from collector.store.search_mapping import IndexLayout
from collector.store.search_transport import ClusterError, Transport

T = TypeVar("T")
LEDGER_RACE_ATTEMPTS: Final = 50
REFRESH: Final = {"refresh": "true"}


def alert_from_json(doc: dict[str, Any]) -> Alert:
    return Alert(
        id=doc["id"],
        rule_id=doc["rule_id"],
        title=doc["title"],
        level=doc["level"],
        tags=tuple(doc["tags"]),
        host=doc["host"],
        zone=doc["zone"],
        entity=doc["entity"],
        count=int(doc["count"]),
        first_seen=parse_iso(doc["first_seen"]),
        last_seen=parse_iso(doc["last_seen"]),
        event_ids=tuple(doc["event_ids"]),
        status=doc["status"],
        resolution=doc["resolution"],
        description=doc["description"],
    )


class AlertsAndLedger:
    def __init__(self, transport: Transport, layout: IndexLayout) -> None:
        self.transport = transport
        self.layout = layout

    def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ClusterError as exc:
            raise StoreError(
                f"cluster request failed: {exc}",
                remedy="check the cluster URL, credentials and health (GET /_cluster/health)",
            ) from exc

    def _search(self, index: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        answer = self._call(
            self.transport.request,
            "POST",
            f"/{index}/_search",
            params={"allow_no_indices": "true", "ignore_unavailable": "true"},
            body=body,
        )
        return list(answer.get("hits", {}).get("hits", []))

    # -- alerts ---------------------------------------------------------------------------
    def upsert_alert(self, alert: Alert) -> None:
        doc = alert.to_json()
        doc["event_ids"] = doc["event_ids"][:MAX_ALERT_EVENT_IDS]
        self._call(
            self.transport.request,
            "PUT",
            f"/{self.layout.alerts}/_doc/{alert.id}",
            params=REFRESH,
            body=doc,
        )

    def get_alert(self, alert_id: str) -> Alert | None:
        try:
            answer = self.transport.request("GET", f"/{self.layout.alerts}/_doc/{alert_id}")
        except ClusterError as exc:
            if exc.status == 404:
                return None
            raise StoreError(f"cluster request failed: {exc}") from exc
        return alert_from_json(answer["_source"]) if answer.get("found") else None

    def find_open_alert(self, rule_id: str, entity: str, not_before: datetime) -> Alert | None:
        body = {
            "size": 1,
            "sort": [{"last_seen": "desc"}],
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"rule_id": rule_id}},
                        {"term": {"entity": entity}},
                        {"range": {"last_seen": {"gte": to_iso(not_before)}}},
                    ],
                    "must_not": [{"term": {"status": "closed"}}],
                }
            },
        }
        hits = self._search(self.layout.alerts, body)
        return alert_from_json(hits[0]["_source"]) if hits else None

    def list_alerts(
        self,
        *,
        status: AlertStatus | None = None,
        host: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        filters: list[dict[str, Any]] = []
        if status is not None:
            filters.append({"term": {"status": status}})
        if host is not None:
            filters.append({"term": {"host": host}})
        if since is not None:
            filters.append({"range": {"last_seen": {"gte": to_iso(since)}}})
        if until is not None:
            filters.append({"range": {"first_seen": {"lte": to_iso(until)}}})
        body = {
            "size": limit,
            "sort": [{"last_seen": "desc"}, {"id": "asc"}],
            "query": {"bool": {"filter": filters}},
        }
        return [alert_from_json(hit["_source"]) for hit in self._search(self.layout.alerts, body)]

    def set_alert_status(
        self, alert_id: str, status: AlertStatus, resolution: Resolution | None
    ) -> Alert:
        try:
            self.transport.request(
                "POST",
                f"/{self.layout.alerts}/_update/{alert_id}",
                params=REFRESH,
                body={"doc": {"status": status, "resolution": resolution}},
            )
        except ClusterError as exc:
            if exc.status == 404:
                raise NotFoundError(
                    f"no alert with id {alert_id!r}", remedy="list alerts: sekimori alerts list"
                ) from exc
            raise StoreError(f"cluster request failed: {exc}") from exc
        alert = self.get_alert(alert_id)
        if alert is None:
            raise NotFoundError(f"alert {alert_id!r} vanished during the update")
        return alert

    # -- triage ledger --------------------------------------------------------------------
    def _ledger_head(self) -> tuple[int, str]:
        body = {"size": 1, "sort": [{"seq": "desc"}], "query": {"match_all": {}}}
        hits = self._search(self.layout.triage, body)
        if not hits:
            return 0, GENESIS_HASH
        head = hits[0]["_source"]
        return int(head["seq"]), str(head["hash"])

    def append_triage(self, record: TriageRecord) -> TriageRecord:
        for _ in range(LEDGER_RACE_ATTEMPTS):
            last_seq, prev = self._ledger_head()
            stamped = replace(record, seq=last_seq + 1, prev_hash=prev)
            stamped = replace(stamped, hash=triage_hash(prev, stamped))
            try:
                self.transport.request(
                    "PUT",
                    f"/{self.layout.triage}/_create/{stamped.seq}",
                    params=REFRESH,
                    body=stamped.to_json(),
                )
            except ClusterError as exc:
                if exc.status == 409:  # another writer took this seq: re-read the head
                    continue
                raise StoreError(f"triage record not written: {exc}") from exc
            return stamped
        raise StoreError("triage ledger: too many concurrent appends, giving up")

    def triage_records(
        self,
        *,
        alert_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[TriageRecord]:
        filters: list[dict[str, Any]] = []
        if alert_id is not None:
            filters.append({"term": {"alert_id": alert_id}})
        if since is not None or until is not None:
            window = {"gte": to_iso(since)} if since is not None else {}
            if until is not None:
                window["lte"] = to_iso(until)
            filters.append({"range": {"at": window}})
        records: list[TriageRecord] = []
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {
                "size": 5000,
                "sort": [{"seq": "asc"}],
                "query": {"bool": {"filter": filters}},
            }
            if after is not None:
                body["search_after"] = after
            hits = self._search(self.layout.triage, body)
            records += [_triage(hit["_source"]) for hit in hits]
            if len(hits) < 5000:
                return records
            after = hits[-1]["sort"]


def _triage(doc: dict[str, Any]) -> TriageRecord:
    return TriageRecord(
        seq=int(doc["seq"]),
        alert_id=doc["alert_id"],
        playbook_id=doc["playbook_id"],
        step_id=doc["step_id"],
        kind=doc["kind"],
        actor=doc["actor"],
        at=parse_iso(doc["at"]),
        detail=doc["detail"],
        prev_hash=doc["prev_hash"],
        hash=doc["hash"],
    )
