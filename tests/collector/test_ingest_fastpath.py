"""The ingest fast paths agree with the reference paths they replace.

- ``fastid``: orjson with sorted keys is byte-equal to ``agents.schema.canonical_json`` (every
  ASCII character, hostile strings, ints at the I-JSON edges), and the ids agree.
- ``validate_fast``: ``parse_batch`` (fast path first) returns exactly what
  ``parse_batch_reference`` returns, or raises the same refusal, for valid, broken and hostile
  batches, including duplicate keys hidden with colons and ``\\u003a`` escapes.
- ``zones``: the memoised lookups answer what the uncached classifier answers.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.errors import InputError
from agents.schema import (
    COLLECTOR_FIELDS,
    FIELD_TYPES,
    canonical_json,
    compute_event_id,
    flatten,
    seal,
)
from collector.fastid import canonical_bytes, id_of_checked_view, id_of_view
from collector.ingest_workers import enrich_event
from collector.store.base import encode_event
from collector.validate import Limits, ParsedBatch, parse_batch, parse_batch_reference
from collector.validate_fast import try_fast_batch
from collector.zones import _classify, example_zones_path, load_zones
from tests.conftest import batch, build_event

LIMITS = Limits()
TEXT = st.text(st.characters(codec="utf-8"), max_size=30)  # no lone surrogates
HOSTILE = st.sampled_from(
    ['"', "\\", "\\u003a", ":", '":"', "\u2028", "\u2029", "\x7f", "\x00", "\ufeff", "/", "\\/"]
)
STRINGS = st.one_of(TEXT, HOSTILE, st.lists(HOSTILE | TEXT, max_size=5).map("".join))
INTS = st.one_of(
    st.integers(-(2**53 - 1), 2**53 - 1), st.sampled_from([0, -1, 2**53 - 1, -(2**53 - 1)])
)
LEAVES = st.one_of(STRINGS, INTS, st.booleans(), st.none(), st.lists(STRINGS, max_size=4))


# -- fastid -----------------------------------------------------------------------------------
def test_every_ascii_character_is_escaped_the_same_way() -> None:
    for code in range(128):
        text = chr(code)
        view = {"message": text, f"k{text}": text * 3}
        assert orjson.dumps(view, option=orjson.OPT_SORT_KEYS) == canonical_json(view).encode()
        assert canonical_bytes(view) == canonical_json(view).encode()


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(STRINGS, LEAVES, max_size=12))
def test_canonical_bytes_equal_the_stdlib_form(view: dict[str, Any]) -> None:
    expected = canonical_json(view).encode("utf-8")
    assert canonical_bytes(view) == expected
    # orjson is byte-equal on non-ASCII text too; fastid still falls back there by design
    assert orjson.dumps(view, option=orjson.OPT_SORT_KEYS) == expected


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(sorted(FIELD_TYPES)), LEAVES, min_size=1, max_size=12))
def test_ids_equal_compute_event_id(view: dict[str, Any]) -> None:
    for path in (*COLLECTOR_FIELDS, "event.id"):
        view.pop(path, None)
    event = {**view, "event.id": "x"}  # dotted keys flatten to themselves
    assert id_of_view(view) == compute_event_id(event)
    checked = {k: v for k, v in view.items() if v is not None}
    assert id_of_checked_view(checked) == compute_event_id(checked)


def test_floats_and_odd_types_take_the_stdlib_path() -> None:
    for view in ({"a": 1e16}, {"a": 0.1}, {"a": 2**60}, {"a": [1, "x"]}, {"a": {"b": 1}}):
        assert canonical_bytes(view) == canonical_json(view).encode()
    with pytest.raises(UnicodeEncodeError):  # as the stdlib path does
        canonical_bytes({"a": "\ud800"})


# -- validate: fast path == reference path ----------------------------------------------------
def _outcome(body: bytes, parse: Any) -> tuple[Any, ...]:
    try:
        parsed: ParsedBatch = parse(body, LIMITS)
    except InputError as exc:
        return ("refused", type(exc).__name__, exc.message)
    return (
        parsed.agent_id,
        parsed.agent_name,
        [(i, orjson.dumps(e)) for i, e in parsed.valid],
        [(r.index, r.event_id, r.reason, canonical_json(r.raw)) for r in parsed.rejected],
        parsed.max_seq,
    )


def _dump_json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode()


def _dump_ascii(value: Any) -> bytes:
    return json.dumps(value).encode()


def _dump_spaced(value: Any) -> bytes:
    return json.dumps(value, indent=1).encode()


def _dump_canonical(value: Any) -> bytes:
    return canonical_json(value).encode()


DUMPS: dict[str, Callable[[Any], bytes]] = {
    "orjson": orjson.dumps,
    "json": _dump_json,
    "ascii": _dump_ascii,
    "spaced": _dump_spaced,
    "canonical": _dump_canonical,
}


def _same(body: bytes) -> tuple[Any, ...]:
    fast = _outcome(body, parse_batch)
    assert fast == _outcome(body, parse_batch_reference)
    _check_leaves(body)
    return fast


ZONES = load_zones(example_zones_path())


def _check_leaves(body: bytes) -> None:
    """A batch taken by the fast path comes with each event's leaves: exactly its dotted
    leaf paths and values, and still so after zone enrichment and ``event.ingested``."""
    try:
        parsed = parse_batch(body, LIMITS)
    except InputError:
        return
    if parsed.leaves is None:
        return
    assert len(parsed.leaves) == len(parsed.valid)
    for (_, event), leaves in zip(parsed.valid, parsed.leaves, strict=True):
        assert leaves == dict(flatten(event))
        enrich_event(ZONES, event, leaves, "2026-11-26T00:00:00.000000Z")
        assert leaves == dict(flatten(event))
        assert encode_event(event, leaves) == encode_event(event)


def test_valid_batches_take_the_fast_path_with_the_same_result() -> None:
    assert parse_batch(orjson.dumps(batch([build_event(seq=1)])), LIMITS).leaves is not None
    events = [
        build_event(seq=1),
        build_event("network_connection", seq=2, destination__ip="2001:db8::1"),
        build_event(seq=3, process__command_line='a:b "c" \\d \u0001 関守 \U0001f600 x:y'),
        build_event("heartbeat", seq=4, tags=["a:b", "::1"]),
        build_event("network_listen", seq=5, host_ip="::ffff:10.10.0.5"),
    ]
    for name in ("orjson", "ascii", "json", "canonical"):
        body = DUMPS[name](batch(events))
        assert try_fast_batch(body, LIMITS) is not None  # the fast path is really used
        outcome = _same(body)
        assert [i for i, _ in outcome[2]] == [0, 1, 2, 3, 4]


def _sealed_raw(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


@pytest.mark.parametrize(
    "raw_event",
    [
        # a duplicate key whose last value is the sealed one: only duplicate detection refuses
        lambda e: _sealed_raw(e).replace('"@timestamp":', '"@timestamp":"x","@timestamp":', 1),
        # ... hidden behind an escaped colon in a string (the colon count would balance)
        lambda e: _sealed_raw(e).replace(
            '"@timestamp":', '"@timestamp":"\\u003a","@timestamp":', 1
        ),
        lambda e: _sealed_raw(e).replace(
            '"@timestamp":', '"@timestamp":"\\u003A","@timestamp":', 1
        ),
        # ... balanced by an escaped colon in a *kept* string (the sealed value has a colon)
        lambda e: (
            _sealed_raw(seal({**e, "message": "a:b"}))
            .replace('"message":"a:b"', '"message":"a\\u003ab"', 1)
            .replace('"@timestamp":', '"@timestamp":"x","@timestamp":', 1)
        ),
        # a duplicate inside a nested object
        lambda e: _sealed_raw(e).replace('"pid":4242', '"pid":1,"pid":4242', 1),
        # numbers beyond 64 bits (orjson reads a float), beyond 2**53, floats, NaN
        lambda e: _sealed_raw(e).replace('"pid":4242', '"pid":18446744073709551616', 1),
        lambda e: _sealed_raw(e).replace('"pid":4242', '"pid":9007199254740993', 1),
        lambda e: _sealed_raw(e).replace('"pid":4242', '"pid":4242.0', 1),
        lambda e: _sealed_raw(e).replace('"pid":4242', '"pid":NaN', 1),
        lambda e: _sealed_raw(e).replace('"name":"true"', '"name":"\\ud800"', 1),
        lambda e: _sealed_raw(e).replace('"name":"true"', '"name":"tr\\u0075e"', 1),
        lambda e: _sealed_raw(e).replace('"name":"true"', '"name":"a:b:c"', 1),
        lambda e: _sealed_raw(e).replace('"process":{', '"process":{"x":{},', 1),
        lambda e: _sealed_raw(e).replace('"process":{', '"empty":{},"process":{', 1),
    ],
)
def test_hostile_encodings_agree(raw_event: Any) -> None:
    event = build_event(seq=1)
    text = raw_event(event)
    body = (
        '{"schema":"sekimori.batch/1","agent":{"id":"agent-test","name":"t"},"events":['
        + _sealed_raw(build_event(seq=2))
        + ","
        + text
        + "]}"
    ).encode()
    _same(body)


def test_year_one_with_an_offset_is_refused_not_a_crash() -> None:
    event = build_event(seq=1, timestamp="0001-01-01T00:00:00+01:00")
    outcome = _same(orjson.dumps(batch([event])))
    assert outcome[3][0][2].startswith("field '@timestamp'")


def _mutate(event: dict[str, Any], path: str, value: Any, reseal: bool) -> dict[str, Any]:
    node = event
    parts = path.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value
    return seal(event) if reseal else event


KINDS = st.sampled_from(["process_start", "network_connection", "network_listen", "heartbeat"])
PATHS = st.sampled_from([*sorted(FIELD_TYPES), "x", "process.x", "sekimori.zone.host", "a.b.c"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(KINDS, st.lists(st.tuples(PATHS, LEAVES), max_size=3), st.booleans()),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(["orjson", "json", "ascii", "spaced"]),
)
def test_random_batches_agree(plan: list[Any], encoding: str) -> None:
    events = []
    for seq, (kind, changes, reseal) in enumerate(plan, start=1):
        event = build_event(kind, seq=seq)
        for path, value in changes:
            event = _mutate(copy.deepcopy(event), path, value, reseal)
        events.append(event)
    value = batch(events)
    body = DUMPS[encoding](value)
    _same(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_agree(body: bytes) -> None:
    _same(body)


# -- zones ------------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.ip_addresses().map(str),
        st.sampled_from(["10.10.0.5", "::ffff:10.10.0.5", "127.0.0.1", "198.51.100.10", "x"]),
    )
)
def test_memoised_zone_lookups_equal_the_uncached_ones(ip: str) -> None:
    zones = load_zones(example_zones_path())
    assert (zones.zone_of(ip), zones.role_of(ip)) == _classify(zones.zones, zones.roles, ip)
    assert zones.zone_of(ip) == zones.zone_of(ip)  # second answer from the cache


def test_zone_cache_is_bounded() -> None:
    zones = load_zones(example_zones_path())
    for n in range(70_000):
        zones.zone_of(str(ipaddress.IPv4Address(0x0A000000 + n)))
    info = zones._lookup.cache_info()  # type: ignore[attr-defined]
    assert info.currsize <= info.maxsize < 70_000
