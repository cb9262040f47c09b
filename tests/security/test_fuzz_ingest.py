"""Fuzzing the batch decoder (hypothesis) and the ingest API (thousands of malformed bodies
over real mutual TLS): never a 5xx, never a crash, always a clear 4xx reason, and the valid
events of a mixed batch are kept."""

from __future__ import annotations

import http.client
import json
import random
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.errors import InputError
from collector.service import CollectorThread
from collector.validate import Limits, parse_batch
from tests.conftest import batch, build_event
from tests.security.kit import enroll_agent, start_collector

LIMITS = Limits(max_body_bytes=64 * 1024, max_events=50)
# I-JSON values (RFC 7493): the decoder refuses a whole body with NaN, Infinity, integers
# beyond 2**53-1 or lone surrogates, by design; the mixed-batch property is about the rest.
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53 - 1), 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_refuses_random_bytes_cleanly(body: bytes) -> None:
    try:
        parse_batch(body, LIMITS)
    except InputError as exc:
        assert exc.message


@settings(max_examples=300, deadline=None)
@given(JSON)
def test_decoder_refuses_random_json_cleanly(value: Any) -> None:
    try:
        parse_batch(json.dumps(value).encode(), LIMITS)
    except InputError as exc:
        assert exc.message


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(["keep", "break"]), JSON), min_size=1, max_size=10))
def test_decoder_keeps_every_valid_event_of_a_mixed_batch(plan: list[tuple[str, Any]]) -> None:
    events: list[Any] = []
    for index, (what, junk) in enumerate(plan):
        if what == "keep":
            events.append(build_event("heartbeat", agent_id="a", seq=index + 1))
        else:
            events.append(junk if not isinstance(junk, dict) else {**junk, "x": 1})
    parsed = parse_batch(json.dumps(batch(events, agent_id="a")).encode(), LIMITS)
    assert [i for i, _ in parsed.valid] == [i for i, (w, _) in enumerate(plan) if w == "keep"]
    assert len(parsed.valid) + len(parsed.rejected) == len(plan)
    assert all(r.reason for r in parsed.rejected)


def mutations(agent_id: str, rng: random.Random, count: int) -> Iterator[bytes]:
    good = json.dumps(
        batch([build_event("heartbeat", agent_id=agent_id, seq=1)], agent_id)
    ).encode()
    for _ in range(count):
        kind = rng.randrange(5)
        data = bytearray(good)
        if kind == 0:  # bit flips
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 1:  # truncation
            del data[rng.randrange(len(data)) :]
        elif kind == 2:  # random bytes
            data = bytearray(rng.randbytes(rng.randint(0, 200)))
        elif kind == 3:  # splice a random JSON token somewhere
            at = rng.randrange(len(data))
            data[at:at] = rng.choice([b"{", b"]", b'"', b"null", b"1e999", b"\\u0000", b"\xff"])
        else:  # duplicate a chunk
            at = rng.randrange(len(data))
            data[at:at] = data[: rng.randint(1, 40)]
        yield bytes(data)


@pytest.fixture
def running(tmp_path: Path) -> Iterator[CollectorThread]:
    thread = start_collector(tmp_path / "data", limits=LIMITS)
    yield thread
    thread.stop()


def test_thousands_of_malformed_bodies_over_mtls(running: CollectorThread, tmp_path: Path) -> None:
    identity = enroll_agent(running, tmp_path / "agent")
    context = ssl.create_default_context(cafile=str(identity.ca_file))
    context.load_cert_chain(str(identity.cert_file))
    conn = http.client.HTTPSConnection("127.0.0.1", running.collector.config.port, context=context)
    statuses: dict[int, int] = {}
    rng = random.Random(1234)
    for body in mutations(identity.agent_id, rng, 2000):
        conn.request("POST", "/v1/events", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = json.loads(response.read())
        statuses[response.status] = statuses.get(response.status, 0) + 1
        assert response.status in (200, 400, 403, 413), (response.status, body[:200])
        if response.status != 200:
            assert answer["error"], body[:200]
        else:
            assert all(r["reason"] for r in answer["rejected"])
        if response.will_close:
            conn.close()
    assert statuses.get(400, 0) > 1000
    health = http.client.HTTPSConnection(
        "127.0.0.1", running.collector.config.port, context=context
    )
    health.request("GET", "/v1/health")
    assert health.getresponse().status == 200  # still alive
