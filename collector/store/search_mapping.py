"""Index layout and mappings shared by the OpenSearch and Elasticsearch stores.

Mappings cannot explode: every index is ``dynamic: false``, so a field not listed here stays
in ``_source`` (returned whole by reads) but is never added to the mapping, and the explicit
mapping is far below ``index.mapping.total_fields.limit``. Event fields come from
``agents.schema.FIELD_TYPES`` (our ECS subset); each string field also has a ``.ci`` sub-field
with a lowercase normalizer, which retro hunts query because Sigma matching is
case-insensitive by default. Timestamps are ``date_nanos`` so range filters compare at the
microsecond precision the SQLite store uses.

Events go to one index per month of their ``@timestamp`` (``<prefix>-events-YYYY.MM``): an
event's index follows from the event, so a resend targets the same index and the ``create``
op on its deterministic ``_id`` is a no-op. Retention deletes whole months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from agents.schema import FIELD_TYPES, FieldType

KEYWORD_LIMIT: Final = 8191  # longest keyword indexed (Lucene's term limit is 32766 bytes)
CI: Final = "ci"  # the case-insensitive sub-field name

_TYPES: Final[dict[FieldType, dict[str, Any]]] = {
    "str": {"type": "keyword", "ignore_above": KEYWORD_LIMIT},
    "list[str]": {"type": "keyword", "ignore_above": KEYWORD_LIMIT},
    "int": {"type": "long"},
    "bool": {"type": "boolean"},
    "timestamp": {"type": "date_nanos"},
    "ip": {"type": "ip"},
    "list[ip]": {"type": "ip"},
}

STRING_FIELDS: Final[frozenset[str]] = frozenset(
    path for path, kind in FIELD_TYPES.items() if kind in ("str", "list[str]")
)


def _field_mapping(kind: FieldType) -> dict[str, Any]:
    mapping = dict(_TYPES[kind])
    if kind in ("str", "list[str]"):
        mapping["fields"] = {
            CI: {"type": "keyword", "normalizer": "lowercase", "ignore_above": KEYWORD_LIMIT}
        }
    return mapping


def nested_properties(flat: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{"a.b": {...}} -> {"a": {"properties": {"b": {...}}}}."""
    root: dict[str, Any] = {}
    for path, mapping in flat.items():
        node = root
        parts = path.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {"properties": {}})["properties"]
        node[parts[-1]] = mapping
    return root


def event_mappings() -> dict[str, Any]:
    flat = {path: _field_mapping(kind) for path, kind in FIELD_TYPES.items()}
    return {"dynamic": False, "properties": nested_properties(flat)}


def _mappings(fields: dict[str, str]) -> dict[str, Any]:
    flat = {path: {"type": kind} for path, kind in fields.items()}
    return {"dynamic": False, "properties": nested_properties(flat)}


ALERT_MAPPINGS: Final = _mappings(
    {
        "id": "keyword",
        "rule_id": "keyword",
        "entity": "keyword",
        "host": "keyword",
        "status": "keyword",
        "level": "keyword",
        "first_seen": "date_nanos",
        "last_seen": "date_nanos",
    }
)
TRIAGE_MAPPINGS: Final = _mappings(
    {"seq": "long", "alert_id": "keyword", "at": "date_nanos", "hash": "keyword"}
)
DEAD_LETTER_MAPPINGS: Final = _mappings(
    {"n": "long", "agent_id": "keyword", "event_id": "keyword", "received_at": "date_nanos"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class IndexLayout:
    """Index names and settings for one deployment (``prefix`` separates deployments)."""

    prefix: str = "sekimori"
    shards: int = 1
    replicas: int = 0
    refresh_interval: str = "1s"
    retention_days: int | None = None  # None: keep events forever

    @property
    def events_pattern(self) -> str:
        return f"{self.prefix}-events-*"

    @property
    def alerts(self) -> str:
        return f"{self.prefix}-alerts"

    @property
    def triage(self) -> str:
        return f"{self.prefix}-triage"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}-dead-letters"

    def events_index(self, timestamp: str) -> str:
        """The monthly index for an RFC 3339 ``@timestamp`` (``2026-11-26T...`` -> 2026.11)."""
        return f"{self.prefix}-events-{timestamp[0:4]}.{timestamp[5:7]}"

    def settings(self, *, refresh: str | None = None) -> dict[str, Any]:
        return {
            "number_of_shards": self.shards,
            "number_of_replicas": self.replicas,
            "refresh_interval": refresh or self.refresh_interval,
            "mapping": {"total_fields": {"limit": 1000}},
        }

    def events_template(self) -> dict[str, Any]:
        return {
            "index_patterns": [self.events_pattern],
            "priority": 200,
            "template": {"settings": self.settings(), "mappings": event_mappings()},
            "_meta": {"managed_by": "sekimori"},
        }

    def side_indices(self) -> dict[str, dict[str, Any]]:
        """The non-event indices with their create bodies (refreshed on write, so small)."""
        return {
            name: {"settings": self.settings(), "mappings": mappings}
            for name, mappings in (
                (self.alerts, ALERT_MAPPINGS),
                (self.triage, TRIAGE_MAPPINGS),
                (self.dead_letters, DEAD_LETTER_MAPPINGS),
            )
        }

    def expired(self, index_names: list[str], now: datetime | None = None) -> list[str]:
        """Monthly event indices whose whole month is older than the retention period."""
        if self.retention_days is None:
            return []
        cutoff = (now or datetime.now(UTC)) - timedelta(days=self.retention_days)
        expired: list[str] = []
        head = f"{self.prefix}-events-"
        for name in index_names:
            suffix = name.removeprefix(head)
            if name == suffix or len(suffix) != 7:
                continue
            try:
                year, month = int(suffix[:4]), int(suffix[5:7])
            except ValueError:
                continue
            end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
            if end <= cutoff:
                expired.append(name)
        return expired
