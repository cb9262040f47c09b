"""Strict validation of ingest bodies: I-JSON, limits, the batch envelope, each event.

Two levels of refusal:
- the *body* is refused whole (``InputError``) when it is not I-JSON, too large, or not a
  valid envelope: nothing in it can be trusted to be an event;
- an *event* is refused alone (a ``Rejection`` with its reason) when it breaks the event
  contract; the valid events of the same batch are kept.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from typing import Any, Final

from agents.errors import InputError
from agents.schema import (
    BATCH_SCHEMA,
    COLLECTOR_FIELDS,
    EVENT_KINDS,
    FIELD_TYPES,
    KIND_REQUIRED,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    compute_event_id,
    flatten,
    parse_iso,
)
from collector.validate_fast import try_fast_batch

I_JSON_MAX_INT: Final = 2**53 - 1  # RFC 7493: integers must be exactly representable


class TooLargeError(InputError):
    """The body or the batch is over a configured limit (HTTP 413)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    max_body_bytes: int = 4 * 1024 * 1024
    max_events: int = 5000
    max_string: int = 65536
    max_list: int = 1024
    max_depth: int = 8


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    event_id: str | None
    reason: str
    raw: Any


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    agent_id: str
    agent_name: str
    valid: list[tuple[int, dict[str, Any]]]  # (index in batch, event)
    rejected: list[Rejection]
    max_seq: int  # highest sequence number seen in the batch (valid or not), 0 if none
    # The fast path's by-product, one per valid event: every dotted leaf path -> its value
    # (None after the reference path). See ``collector.validate_fast``.
    leaves: list[dict[str, Any]] | None = None


class _NotJson(str):
    """Stands in for NaN/Infinity while parsing, so the event that holds one is refused alone
    (it serialises as its name in the dead-letter copy)."""


class _Pairs(dict[str, Any]):
    """An object whose members were parsed; remembers keys that appeared twice."""

    duplicates: tuple[str, ...] = ()


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    plain = dict(pairs)
    if len(plain) == len(pairs):  # no key twice: a plain dict (no Python loop)
        return plain
    result = _Pairs()
    seen: list[str] = []
    for key, value in pairs:
        if key in result:
            seen.append(key)
        result[key] = value
    if seen:
        result.duplicates = tuple(seen)
    return result


def parse_i_json(body: bytes, limits: Limits) -> Any:
    """Parse a body; syntax errors, bad UTF-8 and oversize refuse it whole (``InputError``).

    I-JSON value rules (RFC 7493: no duplicate keys, NaN/Infinity, integers beyond ±2^53,
    lone surrogates) are checked afterwards by ``check_i_json``, per event where possible,
    so one bad event does not cost the valid events of its batch."""
    if len(body) > limits.max_body_bytes:
        raise TooLargeError(
            f"body of {len(body)} bytes exceeds the limit of {limits.max_body_bytes} bytes",
            remedy="send smaller batches",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"body is not valid UTF-8 at byte {exc.start}") from exc
    try:
        return json.loads(text, object_pairs_hook=_pairs, parse_constant=_NotJson)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise InputError("JSON nested too deeply") from exc


def check_i_json(value: Any, limits: Limits, depth: int = 0, *, skip: Any = None) -> None:
    """Raise ``InputError`` for the first I-JSON violation in ``value`` (``skip``: a child
    object not to descend into, e.g. the events list checked event by event)."""
    if depth > limits.max_depth + 2:  # envelope + events list + event nesting
        raise InputError(f"JSON nested deeper than {limits.max_depth} levels")
    if isinstance(value, _NotJson):
        raise InputError(f"{value} is not JSON (I-JSON forbids NaN and Infinity)")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputError("string with a lone surrogate (I-JSON needs valid Unicode)") from exc
    elif isinstance(value, bool):
        return
    elif isinstance(value, int) and abs(value) > I_JSON_MAX_INT:
        raise InputError(f"integer {value} is outside the I-JSON range of ±(2**53-1)")
    elif isinstance(value, dict):
        duplicates = getattr(value, "duplicates", ())
        if duplicates:
            raise InputError(f"duplicate object key {duplicates[0]!r} (I-JSON forbids duplicates)")
        for key, item in value.items():
            check_i_json(key, limits, depth + 1)
            if item is not skip:
                check_i_json(item, limits, depth + 1)
    elif isinstance(value, list):
        for item in value:
            check_i_json(item, limits, depth + 1)


def parse_batch(body: bytes, limits: Limits) -> ParsedBatch:
    """Parse and check one batch body: ``InputError`` refuses the body whole; each invalid
    event becomes a ``Rejection`` with its reason, the valid ones are kept.

    A batch whose events are all valid usually takes the one-pass fast path
    (``validate_fast``), which steps aside to the reference path below on any doubt."""
    if len(body) > limits.max_body_bytes:
        raise TooLargeError(
            f"body of {len(body)} bytes exceeds the limit of {limits.max_body_bytes} bytes",
            remedy="send smaller batches",
        )
    fast = try_fast_batch(body, limits)
    if fast is not None:
        agent_id, name, valid, max_seq, leaves = fast
        return ParsedBatch(agent_id, name, valid, [], max_seq, leaves)
    return parse_batch_reference(body, limits)


def parse_batch_reference(body: bytes, limits: Limits) -> ParsedBatch:
    """The reference path: every check spelled out, every refusal worded."""
    envelope = parse_i_json(body, limits)
    events_value = envelope.get("events") if isinstance(envelope, dict) else None
    check_i_json(envelope, limits, skip=events_value if isinstance(events_value, list) else None)
    if not isinstance(envelope, dict):
        raise InputError("batch must be a JSON object with 'schema', 'agent' and 'events'")
    unknown = set(envelope) - {"schema", "agent", "events"}
    if unknown:
        raise InputError(f"unknown batch fields {sorted(unknown)}")
    if envelope.get("schema") != BATCH_SCHEMA:
        raise InputError(
            f"unsupported batch schema {envelope.get('schema')!r} (expected {BATCH_SCHEMA!r})",
            remedy="upgrade the agent or the collector so they speak the same schema",
        )
    agent = envelope.get("agent")
    if not isinstance(agent, dict) or not isinstance(agent.get("id"), str) or not agent["id"]:
        raise InputError("batch 'agent' must be an object with a non-empty string 'id'")
    if set(agent) - {"id", "name"}:
        raise InputError(f"unknown agent fields {sorted(set(agent) - {'id', 'name'})}")
    events = envelope.get("events")
    if not isinstance(events, list):
        raise InputError("batch 'events' must be a list")
    if len(events) > limits.max_events:
        raise TooLargeError(
            f"batch of {len(events)} events exceeds the limit of {limits.max_events}",
            remedy="send smaller batches",
        )
    valid: list[tuple[int, dict[str, Any]]] = []
    rejected: list[Rejection] = []
    max_seq = 0
    for index, event in enumerate(events):
        seq = _seq_of(event)
        max_seq = max(max_seq, seq)
        try:
            check_i_json(event, limits, depth=2)
            check_event(event, agent["id"], limits)
        except InputError as exc:
            event_id = _event_id_of(event)
            rejected.append(Rejection(index, event_id, exc.message, event))
        else:
            valid.append((index, event))
    return ParsedBatch(agent["id"], str(agent.get("name", "")), valid, rejected, max_seq)


def _seq_of(event: Any) -> int:
    seq = event.get("sekimori", {}).get("seq") if isinstance(event, dict) else None
    ok = isinstance(seq, int) and not isinstance(seq, bool) and seq > 0
    return seq if ok else 0  # type: ignore[return-value]


def _event_id_of(event: Any) -> str | None:
    if isinstance(event, dict) and isinstance(event.get("event"), dict):
        value = event["event"].get("id")
        return value if isinstance(value, str) else None
    return None


def _type_error(path: str, expected: str, value: Any) -> InputError:
    return InputError(f"field {path!r} must be {expected}, got {type(value).__name__}")


def _check_field(path: str, value: Any, limits: Limits) -> None:
    kind = FIELD_TYPES[path]
    if kind in ("str", "timestamp", "ip"):
        if not isinstance(value, str):
            raise _type_error(path, "a string", value)
        if len(value) > limits.max_string:
            raise InputError(f"field {path!r} is longer than {limits.max_string} characters")
        if kind == "timestamp":
            try:
                parse_iso(value)
            except (ValueError, OverflowError) as exc:  # year 1 with a +01:00 offset overflows
                raise InputError(f"field {path!r}: {exc}") from exc
        elif kind == "ip":
            _check_ip(path, value)
    elif kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            raise _type_error(path, "an integer", value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise _type_error(path, "a boolean", value)
    else:  # list[str] / list[ip]
        if not isinstance(value, list):
            raise _type_error(path, "a list", value)
        if len(value) > limits.max_list:
            raise InputError(f"field {path!r} has more than {limits.max_list} items")
        for item in value:
            if not isinstance(item, str):
                raise InputError(f"field {path!r} must hold strings, got {type(item).__name__}")
            if len(item) > limits.max_string:
                raise InputError(f"an item of {path!r} is longer than {limits.max_string}")
            if kind == "list[ip]":
                _check_ip(path, item)


def _check_ip(path: str, value: str) -> None:
    try:
        ipaddress.ip_address(value)
    except ValueError as exc:
        raise InputError(f"field {path!r}: {value!r} is not an IP address") from exc


def check_event(event: Any, agent_id: str, limits: Limits) -> None:
    """Raise ``InputError`` with the first contract violation of one event."""
    if not isinstance(event, dict):
        raise InputError(f"event must be a JSON object, got {type(event).__name__}")
    fields: dict[str, Any] = {}
    for path, value in flatten(event):
        if path not in FIELD_TYPES:
            raise InputError(f"unknown field {path!r}")
        if path in COLLECTOR_FIELDS:
            raise InputError(f"field {path!r} is set by the collector, not the agent")
        _check_field(path, value, limits)
        fields[path] = value
    for path in REQUIRED_FIELDS:
        if path not in fields:
            raise InputError(f"missing required field {path!r}")
    if fields["sekimori.schema"] != SCHEMA_VERSION:
        raise InputError(
            f"unsupported event schema {fields['sekimori.schema']} (expected {SCHEMA_VERSION})"
        )
    kind = fields["sekimori.kind"]
    if kind not in EVENT_KINDS:
        raise InputError(f"unknown sekimori.kind {kind!r}")
    for path in KIND_REQUIRED[kind]:
        if path not in fields:
            raise InputError(f"missing field {path!r} required for kind {kind!r}")
    if fields["sekimori.seq"] < 1:
        raise InputError("sekimori.seq must be a positive integer")
    if fields["agent.id"] != agent_id:
        raise InputError(
            f"event claims agent {fields['agent.id']!r} but the batch is from {agent_id!r}"
        )
    if fields["event.id"] != compute_event_id(event):
        raise InputError("event.id does not match the event content (tampered or mis-sealed)")
