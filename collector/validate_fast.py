"""One-pass fast path for ``validate.parse_batch``: accept a whole batch, or step aside.

``try_fast_batch`` returns the batch only when it can prove the reference path
(``validate.parse_batch_reference``: stdlib parse with duplicate-key tracking, the I-JSON
walk, ``check_event``) would accept every event of the batch with the same values. Otherwise it
returns None and the caller runs the reference path, which also words every refusal. So the
fast path can only make a batch faster, never change what is accepted or refused.

Why each reference check still holds when this returns a batch:
- *syntax, UTF-8, NaN/Infinity, depth > 1024, lone surrogates*: orjson refuses them (we step
  aside); numbers beyond 64 bits parse as floats, and a float anywhere makes us step aside;
- *integers beyond ±(2**53-1)*: every int leaf is range-checked;
- *duplicate keys* (orjson keeps the last silently): counted. Every ``:`` byte of the body
  is either the separator of one object member or a raw ``:`` inside a string token
  (``\\u003a`` escapes are refused up front). Dropping a duplicate member drops its
  separator, so ``body.count(b":") == members + colons in strings`` of the parsed value holds
  exactly when no key occurred twice;
- *event contract*: the same checks as ``check_event`` on exact types (``type(x) is str``), with
  any doubt (empty objects, a path given twice, a float) handed to the reference path;
- *event.id*: ``fastid.id_of_checked_view`` (byte-equal to ``compute_event_id``).

A batch taken here also comes with each event's *leaves*: every dotted leaf path of the event
with its value (the walk builds them anyway). Zone enrichment, encoding and streaming detection
read those instead of walking the nested event again.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, Final

import orjson

from agents.schema import (
    BATCH_SCHEMA,
    COLLECTOR_FIELDS,
    EVENT_KINDS,
    FIELD_TYPES,
    KIND_REQUIRED,
    REQUIRED_FIELDS,
    SCHEMA_VERSION,
    parse_iso,
)
from collector.fastid import id_of_checked_view

if TYPE_CHECKING:
    from collector.validate import Limits

# (agent id, agent name, valid events with their batch index, highest sequence number,
#  the leaves of each valid event: dotted path -> value, in the order of the valid events)
FastBatch = tuple[str, str, list[tuple[int, dict[str, Any]]], int, list[dict[str, Any]]]

_MAX_INT: Final = 2**53 - 1
_ENVELOPE_KEYS: Final = frozenset({"schema", "agent", "events"})
# The fields an agent may set, with their types (collector-set fields are refused).
_AGENT_FIELDS: Final[dict[str, str]] = {
    path: kind for path, kind in FIELD_TYPES.items() if path not in COLLECTOR_FIELDS
}


@lru_cache(maxsize=65536)
def is_ip(text: str) -> bool:
    """``ipaddress.ip_address(text)`` succeeds (memoised: a fleet talks to few addresses)."""
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _timestamp_ok(text: str) -> bool:
    try:
        parse_iso(text)
    except (ValueError, OverflowError):
        return False
    return True


def _strings_ok(value: Any, limits: Limits, ips: bool) -> int | None:
    """Colons in a list of strings, or None if the list breaks a limit or a type."""
    if type(value) is not list or len(value) > limits.max_list:
        return None
    colons = 0
    for item in value:
        if type(item) is not str or len(item) > limits.max_string:
            return None
        if ips and not is_ip(item):
            return None
        colons += item.count(":")
    return colons


def _leaf(kind: str, value: Any, limits: Limits) -> int | None:
    """Colons in a non-``str`` leaf's strings if it passes ``_check_field`` and I-JSON."""
    if kind == "int":
        ok = type(value) is int and -_MAX_INT <= value <= _MAX_INT
        return 0 if ok else None
    if kind == "bool":
        return 0 if type(value) is bool else None
    if kind in ("list[str]", "list[ip]"):
        return _strings_ok(value, limits, kind == "list[ip]")
    return None


def _schema_tree() -> dict[str, dict[str, tuple[str, str | None]]]:
    """Object path ("" for the event itself) -> {member key: (its dotted path, its type
    from ``FIELD_TYPES``, or None for an object)}: the agent-settable part of the contract."""
    tree: dict[str, dict[str, tuple[str, str | None]]] = {}
    for path, kind in _AGENT_FIELDS.items():
        parts = path.split(".")
        for depth, key in enumerate(parts):
            members = tree.setdefault(".".join(parts[:depth]), {})
            if depth == len(parts) - 1:
                members[key] = (path, kind)
            else:
                members.setdefault(key, (".".join(parts[: depth + 1]), None))
    return tree


_TREE: Final = _schema_tree()
_STRING_CHECK: Final = {"str": 0, "ip": 1, "timestamp": 2}


def _flat_fields(event: Any, limits: Limits) -> tuple[dict[str, Any], int] | None:
    """(dotted path -> leaf, members + string colons) if every leaf is a known, well-typed,
    agent-settable field; None on any doubt. Walks the schema tree, so a key that is not one
    level of a contract path (a dotted key such as ``"process.pid"``) is a doubt too: every
    event taken here is plain nested objects, each path given once."""
    if type(event) is not dict:
        return None
    deepest = limits.max_depth + 2  # check_i_json's limit; the event itself is at depth 2
    max_string = limits.max_string
    fields: dict[str, Any] = {}
    count = 0
    stack: list[tuple[dict[str, Any], str, int]] = [(event, "", 2)]
    while stack:
        node, prefix, depth = stack.pop()
        if not node or depth + 2 > deepest:  # +2: a list's items sit two levels down
            return None
        members = _TREE[prefix]
        count += len(node)
        for key, value in node.items():
            member = members.get(key)
            if member is None:
                return None
            path, kind = member
            if kind is None:
                if type(value) is not dict:
                    return None
                stack.append((value, path, depth + 1))
                continue
            if type(value) is str:  # most leaves: inline
                check = _STRING_CHECK.get(kind)
                if check is None or len(value) > max_string:
                    return None
                if check == 1:
                    if not is_ip(value):
                        return None
                elif check == 2 and not _timestamp_ok(value):
                    return None
                count += value.count(":")
            else:
                colons = _leaf(kind, value, limits)
                if colons is None:
                    return None
                count += colons
            fields[path] = value
    return fields, count


def fast_event(event: Any, agent_id: str, limits: Limits) -> tuple[int, int, dict[str, Any]] | None:
    """(sekimori.seq, members + string colons, leaves) if ``check_event`` accepts the event,
    else None (which means "ask the reference path", not "invalid"). ``leaves`` maps every
    dotted leaf path of the event (all of them ``FIELD_TYPES`` paths) to its value."""
    flat = _flat_fields(event, limits)
    if flat is None:
        return None
    fields, count = flat
    for path in REQUIRED_FIELDS:
        if path not in fields:
            return None
    kind = fields["sekimori.kind"]
    if (
        fields["sekimori.schema"] != SCHEMA_VERSION
        or kind not in EVENT_KINDS
        or fields["sekimori.seq"] < 1
        or fields["agent.id"] != agent_id
    ):
        return None
    for path in KIND_REQUIRED[kind]:
        if path not in fields:
            return None
    claimed = fields.pop("event.id")
    try:
        if id_of_checked_view(fields) != claimed:
            return None
    except UnicodeEncodeError:
        return None
    fields["event.id"] = claimed
    return int(fields["sekimori.seq"]), count, fields


def _envelope(value: Any, limits: Limits) -> tuple[str, str, list[Any], int] | None:
    """(agent id, agent name, events, members + string colons) of a plain valid envelope."""
    if type(value) is not dict or set(value) != _ENVELOPE_KEYS:
        return None
    agent, events, schema = value["agent"], value["events"], value["schema"]
    if schema != BATCH_SCHEMA or type(agent) is not dict or type(events) is not list:
        return None
    if not set(agent) <= {"id", "name"} or len(events) > limits.max_events:
        return None
    agent_id = agent.get("id")
    name = agent.get("name", "")
    if type(agent_id) is not str or not agent_id or type(name) is not str:
        return None
    count = 3 + len(agent) + schema.count(":") + agent_id.count(":") + name.count(":")
    return agent_id, name, events, count


def try_fast_batch(body: bytes, limits: Limits) -> FastBatch | None:
    """The parsed batch if every event is valid and provably so; None: use the reference."""
    if b"\\u003a" in body or b"\\u003A" in body:
        return None
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    envelope = _envelope(value, limits)
    if envelope is None:
        return None
    agent_id, name, events, count = envelope
    valid: list[tuple[int, dict[str, Any]]] = []
    leaves: list[dict[str, Any]] = []
    max_seq = 0
    for index, event in enumerate(events):
        checked = fast_event(event, agent_id, limits)
        if checked is None:
            return None
        seq, colons, fields = checked
        count += colons
        max_seq = max(max_seq, seq)
        valid.append((index, event))
        leaves.append(fields)
    if body.count(b":") != count:  # a duplicate key somewhere (see the module docstring)
        return None
    return agent_id, name, valid, max_seq, leaves
