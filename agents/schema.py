"""The wire contract shared by agent and collector (one contract, two sides).

Events are JSON objects with Elastic Common Schema (ECS) field names, nested the ECS way
(``{"process": {"pid": 1}}``); sekimori's own fields live under ``sekimori.*``. This module is
imported by the agent runtime, so it must stay standard-library only.

Versioning: ``sekimori.schema`` on every event and ``schema`` on every batch carry
``SCHEMA_VERSION``. A collector refuses versions it does not know, naming the version.

Identity: ``event.id`` is derived from the event's canonical JSON (everything except
``event.id`` itself and the fields the collector adds), so a resent event has the same id and
storing it again is a no-op in every store.

Transport additions (additive, schema 1 unchanged; see docs/security.md): enrollment
(``EnrollRequest``/``EnrollResponse``), renewal (``RenewRequest``), the command channel
(``CommandSpec``/``CommandResult``) and two optional request headers on ``/v1/events``:
``X-Sekimori-Backlog`` (events pending in the agent spool) and ``X-Sekimori-Sent-At`` (the
agent clock, RFC 3339, for skew detection). The agent identity is never taken from these: it
is the subject of the client certificate.

Network sensor additions (additive, schema 1 unchanged; see docs/sensor.md): kinds ``dns`` and
``network_flow`` with the ECS ``dns.*``, ``source/destination/network.bytes|packets`` and
``event.start/end/duration`` fields, plus ``sekimori.flow.state`` and
``sekimori.sensor.interface``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal, TypedDict

SCHEMA_VERSION: Final = 1
BATCH_SCHEMA: Final = "sekimori.batch/1"

EventKind = Literal[
    "process_start",
    "process_end",
    "network_connection",
    "network_listen",
    "telemetry_gap",
    "heartbeat",
    "dns",
    "network_flow",
]
EVENT_KINDS: Final[frozenset[str]] = frozenset(EventKind.__args__)  # type: ignore[attr-defined]

# Scalar type names used by FIELD_TYPES. "timestamp" is an RFC 3339 string in UTC ("...Z").
FieldType = Literal["str", "int", "bool", "timestamp", "ip", "list[str]", "list[ip]"]

# Every field an event may carry, dotted ECS path -> type. Anything else is an unknown field.
FIELD_TYPES: Final[Mapping[str, FieldType]] = {
    "@timestamp": "timestamp",
    "message": "str",
    "tags": "list[str]",
    # event.*
    "event.id": "str",
    "event.kind": "str",
    "event.category": "list[str]",
    "event.type": "list[str]",
    "event.action": "str",
    "event.module": "str",
    "event.dataset": "str",
    "event.outcome": "str",
    "event.ingested": "timestamp",
    # agent / host
    "agent.id": "str",
    "agent.name": "str",
    "agent.type": "str",
    "agent.version": "str",
    "host.id": "str",
    "host.name": "str",
    "host.hostname": "str",
    "host.ip": "list[ip]",
    "host.os.type": "str",
    "host.os.family": "str",
    "host.os.name": "str",
    "host.os.kernel": "str",
    # user (owner of the process)
    "user.id": "str",
    "user.name": "str",
    # process.*
    "process.pid": "int",
    "process.entity_id": "str",
    "process.name": "str",
    "process.executable": "str",
    "process.command_line": "str",
    "process.args": "list[str]",
    "process.args_count": "int",
    "process.working_directory": "str",
    "process.start": "timestamp",
    "process.end": "timestamp",
    "process.exit_code": "int",
    "process.hash.sha256": "str",
    "process.parent.pid": "int",
    "process.parent.entity_id": "str",
    "process.parent.name": "str",
    "process.parent.executable": "str",
    "process.parent.command_line": "str",
    # network.*
    "network.transport": "str",
    "network.type": "str",
    "network.direction": "str",
    "network.protocol": "str",
    "source.ip": "ip",
    "source.port": "int",
    "destination.ip": "ip",
    "destination.port": "int",
    # network sensor (agents/sources/netsensor.py): flow counters and timing (ECS)
    "source.bytes": "int",
    "source.packets": "int",
    "destination.bytes": "int",
    "destination.packets": "int",
    "network.bytes": "int",
    "network.packets": "int",
    "event.start": "timestamp",
    "event.end": "timestamp",
    "event.duration": "int",  # nanoseconds (ECS)
    # network sensor: DNS (ECS dns.*)
    "dns.type": "str",  # "query" | "answer"
    "dns.id": "int",
    "dns.question.name": "str",  # lower-case, no trailing dot, non-text bytes escaped
    "dns.question.type": "str",  # "A", "AAAA", "TXT", ... or "TYPE<n>"
    "dns.response_code": "str",  # answers only: "NOERROR", "NXDOMAIN", ...
    "dns.answers.data": "list[str]",  # answers only: rdata as text, at most 32
    "dns.resolved_ip": "list[ip]",  # A/AAAA answers
    # sekimori.* (agent-set)
    "sekimori.schema": "int",
    "sekimori.seq": "int",
    "sekimori.kind": "str",
    "sekimori.gap.first_seq": "int",
    "sekimori.gap.last_seq": "int",
    "sekimori.gap.count": "int",
    "sekimori.gap.reason": "str",
    "sekimori.flow.state": "str",  # syn_only rejected established closed reset udp icmp other
    "sekimori.sensor.interface": "str",  # the interface the network sensor captured on
    # sekimori.* (collector-set during enrichment; refused from agents)
    "sekimori.zone.host": "str",
    "sekimori.zone.source": "str",
    "sekimori.zone.destination": "str",
    "sekimori.role.source": "str",
    "sekimori.role.destination": "str",
}

# Fields only the collector may set; an agent sending them is refused (no spoofed zones).
COLLECTOR_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "event.ingested",
        "sekimori.zone.host",
        "sekimori.zone.source",
        "sekimori.zone.destination",
        "sekimori.role.source",
        "sekimori.role.destination",
    }
)

# Fields every event must carry.
REQUIRED_FIELDS: Final[tuple[str, ...]] = (
    "@timestamp",
    "event.id",
    "event.kind",
    "event.action",
    "agent.id",
    "host.name",
    "sekimori.schema",
    "sekimori.seq",
    "sekimori.kind",
)

# Fields each kind must carry in addition to REQUIRED_FIELDS.
KIND_REQUIRED: Final[Mapping[str, tuple[str, ...]]] = {
    "process_start": ("process.pid", "process.executable"),
    "process_end": ("process.pid",),
    "network_connection": ("network.transport", "destination.ip", "destination.port"),
    "network_listen": ("network.transport", "source.ip", "source.port"),
    "telemetry_gap": ("sekimori.gap.first_seq", "sekimori.gap.last_seq", "sekimori.gap.count"),
    "heartbeat": (),
    "dns": ("dns.type", "dns.id", "network.transport", "source.ip", "destination.ip"),
    "network_flow": (
        "network.transport",
        "source.ip",
        "destination.ip",
        "event.start",
        "event.end",
        "network.bytes",
        "network.packets",
        "sekimori.flow.state",
    ),
}


class BatchEnvelope(TypedDict):
    """What an agent POSTs to the collector's ``/v1/events``."""

    schema: str
    agent: dict[str, str]  # {"id": ..., "name": ...}
    events: list[dict[str, Any]]


class RejectedEvent(TypedDict):
    index: int
    event_id: str | None
    reason: str


class IngestResponse(TypedDict):
    """What the collector answers. ``acked_seq`` is the highest agent sequence number that is
    durably stored (or dead-lettered with its reason): the agent may drop its spool up to it."""

    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]
    acked_seq: int


HEADER_BACKLOG: Final = "X-Sekimori-Backlog"
HEADER_SENT_AT: Final = "X-Sekimori-Sent-At"

ResponseAction = Literal["kill_process", "isolate_host", "release_isolation"]
RESPONSE_ACTIONS: Final[frozenset[str]] = frozenset(ResponseAction.__args__)  # type: ignore[attr-defined]
CommandState = Literal["done", "failed", "refused"]
COMMAND_RESULT_STATES: Final[frozenset[str]] = frozenset(CommandState.__args__)  # type: ignore[attr-defined]


class EnrollRequest(TypedDict):
    """``POST /v1/enroll`` (TLS, no client certificate yet)."""

    token: str
    csr: str  # PEM; subject CN = the agent id (32 lowercase hex)
    name: str


class EnrollResponse(TypedDict):
    """Also the answer to ``POST /v1/renew`` (mutual TLS, body ``RenewRequest``)."""

    agent_id: str
    certificate: str  # PEM client certificate
    ca: str  # PEM collector CA
    not_after: float  # POSIX seconds
    zone: str | None


class RenewRequest(TypedDict):
    csr: str


class CommandSpec(TypedDict):
    """One entry of ``GET /v1/commands`` -> ``{"commands": [...]}`` (mutual TLS)."""

    id: str
    action: str  # a ResponseAction
    args: dict[str, Any]


class CommandResult(TypedDict):
    """``POST /v1/commands/<id>/result`` (mutual TLS)."""

    status: str  # a CommandState
    detail: str


def utc_now_iso() -> str:
    return to_iso(datetime.now(UTC))


def to_iso(moment: datetime) -> str:
    """RFC 3339 UTC with microseconds and a ``Z``: the only timestamp form on the wire."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    """Parse the wire timestamp form (``Z`` or an explicit offset). Raises ValueError."""
    if not isinstance(text, str) or "T" not in text:
        raise ValueError(f"not an RFC 3339 timestamp: {text!r}")
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return moment.astimezone(UTC)


_DURATION = re.compile(r"^\s*([0-9]+)\s*([smhdw])\s*$")
_UNIT_SECONDS: Final[Mapping[str, int]] = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, units: str = "smhdw") -> timedelta:
    """``30s``, ``10m``, ``2h``, ``7d``, ``2w`` -> timedelta (a positive whole number and one of
    ``units``). The one duration syntax of agent flags, CLI options, tokens and playbooks.
    Raises ValueError naming the problem."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None or match.group(2) not in units or int(match.group(1)) == 0:
        raise ValueError(
            f"bad duration {text!r}: use a whole number and one of {', '.join(units)}, e.g. '10m'"
        )
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def canonical_json(value: object) -> str:
    """Stable JSON text: sorted keys, no spaces, UTF-8 kept. Both sides hash this form."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def flatten(event: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Yield (dotted path, leaf value) pairs; lists are leaves."""
    for key, value in event.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from flatten(value, f"{path}.")
        else:
            yield path, value


def get_path(event: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted path, or None. Accepts nested and already-dotted keys."""
    if path in event:
        return event[path]
    node: Any = event
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def set_path(event: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path in a nested dict, creating parents."""
    node = event
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def _identity_view(event: Mapping[str, Any]) -> dict[str, Any]:
    """The event without ``event.id`` and collector-set fields: what the id is computed over."""
    view: dict[str, Any] = {}
    for path, value in flatten(event):
        if path == "event.id" or path in COLLECTOR_FIELDS:
            continue
        view[path] = value
    return view


def compute_event_id(event: Mapping[str, Any]) -> str:
    """Deterministic id: sha256 of the canonical identity view, 32 hex chars (128 bits)."""
    digest = hashlib.sha256(canonical_json(_identity_view(event)).encode("utf-8"))
    return digest.hexdigest()[:32]


def seal(event: dict[str, Any]) -> dict[str, Any]:
    """Stamp ``event.id`` onto an event in place and return it."""
    set_path(event, "event.id", compute_event_id(event))
    return event
