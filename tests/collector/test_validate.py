"""Strict ingest validation: whole-body refusals and per-event rejections with reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agents.errors import InputError
from agents.schema import seal
from collector.validate import Limits, TooLargeError, parse_batch
from tests.conftest import batch, build_event

LIMITS = Limits()


def body(value: object) -> bytes:
    return json.dumps(value).encode()


def test_valid_batch_is_accepted() -> None:
    parsed = parse_batch(body(batch([build_event(seq=1), build_event(seq=2)])), LIMITS)
    assert [i for i, _ in parsed.valid] == [0, 1]
    assert parsed.rejected == []
    assert parsed.max_seq == 2


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "malformed JSON"),
        (b'{"schema": "sekimori.batch/1", "schema": "x"}', "duplicate object key 'schema'"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": 9007199254740993}', "outside the I-JSON range"),
        (b'"\xff\xfe"', "not valid UTF-8"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
        (b"[]", "must be a JSON object"),
        (
            b'{"schema": "sekimori.batch/9", "agent": {"id": "a"}, "events": []}',
            "unsupported batch schema",
        ),
        (b'{"schema": "sekimori.batch/1", "agent": {}, "events": []}', "non-empty string 'id'"),
        (b'{"schema": "sekimori.batch/1", "agent": {"id": "a"}, "events": {}}', "must be a list"),
        (
            b'{"schema": "sekimori.batch/1", "agent": {"id": "a"}, "events": [], "x": 1}',
            "unknown batch fields",
        ),
    ],
)
def test_bad_bodies_are_refused_with_a_reason(raw: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_batch(raw, LIMITS)


def test_oversized_body_and_batch() -> None:
    small = Limits(max_body_bytes=100, max_events=2)
    with pytest.raises(TooLargeError, match="exceeds the limit of 100 bytes"):
        parse_batch(b" " * 101, small)
    events = [build_event(seq=i) for i in (1, 2, 3)]
    with pytest.raises(TooLargeError, match="batch of 3 events exceeds the limit of 2"):
        parse_batch(body(batch(events)), Limits(max_events=2))


def test_bad_events_are_rejected_alone_and_valid_ones_kept() -> None:
    good = build_event(seq=1)
    unknown = build_event(seq=2)
    unknown["process"]["evil"] = "x"
    seal(unknown)
    wrong_type = build_event(seq=3)
    wrong_type["process"]["pid"] = "4242"
    seal(wrong_type)
    spoofed_zone = build_event(seq=4)
    spoofed_zone["sekimori"]["zone"] = {"host": "mynumber"}
    seal(spoofed_zone)
    tampered = build_event(seq=5)
    tampered["process"]["command_line"] = "something else"
    other_agent = build_event(seq=6, agent_id="someone-else")
    missing = build_event(seq=7)
    del missing["process"]["executable"]
    seal(missing)
    bad_ip = build_event("network_connection", seq=8, destination__ip="999.1.1.1")
    parsed = parse_batch(
        body(
            batch(
                [good, unknown, wrong_type, spoofed_zone, tampered, other_agent, missing, bad_ip, 7]
            )
        ),
        LIMITS,
    )
    assert [i for i, _ in parsed.valid] == [0]
    reasons = {r.index: r.reason for r in parsed.rejected}
    assert reasons == {
        1: "unknown field 'process.evil'",
        2: "field 'process.pid' must be an integer, got str",
        3: "field 'sekimori.zone.host' is set by the collector, not the agent",
        4: "event.id does not match the event content (tampered or mis-sealed)",
        5: "event claims agent 'someone-else' but the batch is from 'agent-test'",
        6: "missing field 'process.executable' required for kind 'process_start'",
        7: "field 'destination.ip': '999.1.1.1' is not an IP address",
        8: "event must be a JSON object, got int",
    }
    assert parsed.max_seq == 8
    assert parsed.rejected[0].raw == unknown  # kept whole for the dead-letter table


def test_hostile_strings_survive_validation() -> None:
    hostile = "'; DROP TABLE events;-- \u0000 <script>\u202e ｼｪﾙ 関守 \U0001f600"
    event = build_event(seq=1, process__command_line=hostile)
    parsed = parse_batch(body(batch([event])), LIMITS)
    assert parsed.valid[0][1]["process"]["command_line"] == hostile


def test_i_json_violations_inside_one_event_cost_only_that_event() -> None:
    good = json.dumps(build_event(seq=1))
    raw = (
        '{"schema": "sekimori.batch/1", "agent": {"id": "agent-test"}, "events": ['
        f"{good},"
        '{"sekimori": {"seq": 2}, "x": NaN},'
        '{"sekimori": {"seq": 3}, "a": 1, "a": 2},'
        '{"sekimori": {"seq": 4}, "n": 9007199254740993},'
        '{"sekimori": {"seq": 5}, "s": "\\ud800"}'
        "]}"
    ).encode()
    parsed = parse_batch(raw, LIMITS)
    assert [i for i, _ in parsed.valid] == [0]
    assert {r.index: r.reason for r in parsed.rejected} == {
        1: "NaN is not JSON (I-JSON forbids NaN and Infinity)",
        2: "duplicate object key 'a' (I-JSON forbids duplicates)",
        3: "integer 9007199254740993 is outside the I-JSON range of ±(2**53-1)",
        4: "string with a lone surrogate (I-JSON needs valid Unicode)",
    }
    assert parsed.max_seq == 5


def test_deeply_nested_body_is_refused_not_crashing() -> None:
    with pytest.raises(InputError, match="nested"):
        parse_batch(b"[" * 100_000 + b"]" * 100_000, Limits(max_body_bytes=10**6))


def test_a_rejected_event_with_a_lone_surrogate_is_dead_lettered(tmp_path: Path) -> None:
    from collector.alerts import AlertManager
    from collector.pipeline import IngestPipeline
    from collector.store.sqlite import SqliteStore
    from collector.zones import example_zones_path, load_zones
    from detections import default_rules_dir, load_rules

    store = SqliteStore(tmp_path / "s.db")
    pipeline = IngestPipeline(
        store,
        load_zones(example_zones_path()),
        load_rules([default_rules_dir()]),
        AlertManager(store),
    )
    good = json.dumps(build_event(seq=1))
    raw = (
        '{"schema": "sekimori.batch/1", "agent": {"id": "agent-test"}, "events": ['
        f'{good}, {{"sekimori": {{"seq": 2}}, "s": "\\ud800 関守"}}]}}'
    ).encode()
    answer = pipeline.ingest(raw)
    assert (answer["accepted"], answer["acked_seq"]) == (1, 2)
    (letter,) = store.dead_letters()
    assert letter.reason == "string with a lone surrogate (I-JSON needs valid Unicode)"
    assert json.loads(letter.raw)["s"] == "\ud800 関守"  # kept whole, losslessly
    store.close()
