from __future__ import annotations

import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest

from agents.errors import ConfigError
from agents.events import EventBuilder
from agents.schema import BATCH_SCHEMA
from agents.shipper import Shipper, ShipperConfig, ShipResult, parse_retry_after
from agents.spool import Spool
from tests.agents.agent_testkit import FakeCollector, Pki, check_contract, make_pki


def make(
    tmp_path: Path, builder: EventBuilder, url: str, ca: Path | None, n: int = 5, **kw: Any
) -> tuple[Spool, Shipper]:
    spool = Spool(
        tmp_path / "spool", make_gap=builder.spool_gap, max_bytes=1 << 22, segment_bytes=1 << 18
    )
    if n:
        spool.append([builder.heartbeat(f"e{i}") for i in range(n)])
    kw.setdefault("backoff_base", 0.01)
    kw.setdefault("backoff_max", 0.05)
    config = ShipperConfig(url=url, ca_file=ca, timeout=5, **kw)
    shipper = Shipper(spool, config, agent_id="agent-1", agent_name="pc-01", rng=random.Random(1))
    return spool, shipper


def test_success_posts_envelope_and_acks(
    tmp_path: Path, builder: EventBuilder, collector: FakeCollector, pki: Pki
) -> None:
    spool, shipper = make(tmp_path, builder, collector.url, pki.ca_pem, token="s3cret")
    result = shipper.ship_once()
    assert (result.outcome, result.sent, result.acked_seq) == ("sent", 5, 5)
    assert spool.pending == 0 and spool.acked_seq == 5
    envelope = collector.requests[0]
    assert envelope["schema"] == BATCH_SCHEMA
    assert envelope["agent"] == {"id": "agent-1", "name": "pc-01"}
    assert [e["sekimori"]["seq"] for e in envelope["events"]] == [1, 2, 3, 4, 5]
    for event in envelope["events"]:
        check_contract(event)
    headers = collector.headers[0]
    assert headers["Authorization"] == "Bearer s3cret"
    assert headers["Content-Type"] == "application/json"
    assert shipper.ship_once().outcome == "idle"


def test_batches_are_limited_by_count_and_bytes(
    tmp_path: Path, builder: EventBuilder, collector: FakeCollector, pki: Pki
) -> None:
    _spool, shipper = make(tmp_path, builder, collector.url, pki.ca_pem, n=25, max_events=10)
    assert shipper.drain(10)
    assert [len(r["events"]) for r in collector.requests] == [10, 10, 5]
    _, small = make(tmp_path / "b", builder, collector.url, pki.ca_pem, n=6, max_bytes=1500)
    collector.requests.clear()
    assert small.drain(10)
    assert all(len(json.dumps(r)) < 3000 for r in collector.requests)
    assert sum(len(r["events"]) for r in collector.requests) == 6
    assert len(collector.requests) >= 3


def test_retries_with_backoff_and_retry_after(
    tmp_path: Path, builder: EventBuilder, collector: FakeCollector, pki: Pki
) -> None:
    collector.script = [(503, {}, None), (500, {}, None), (429, {"Retry-After": "7"}, None)]
    spool, shipper = make(tmp_path, builder, collector.url, pki.ca_pem)
    waits: list[float] = []
    stop = threading.Event()

    def wait(delay: float) -> bool:
        waits.append(delay)
        if spool.pending == 0:
            stop.set()
        return stop.is_set()

    shipper.run(stop, wait=wait)
    assert len(collector.requests) == 4
    assert spool.pending == 0
    # two exponential steps (jittered 50-100 %), then Retry-After (7 s) wins
    assert 0.005 <= waits[0] <= 0.01 and 0.01 <= waits[1] <= 0.02
    assert waits[2] == 7.0
    assert shipper.failures == 0


def test_backoff_grows_and_is_capped(tmp_path: Path, builder: EventBuilder, pki: Pki) -> None:
    _, shipper = make(
        tmp_path, builder, "https://127.0.0.1:1", pki.ca_pem, n=0, backoff_base=1, backoff_max=8
    )
    delays = [shipper.next_delay(ShipResult(outcome="retry")) for _ in range(6)]
    assert [0.5 <= d / s <= 1.0 for d, s in zip(delays, [1, 2, 4, 8, 8, 8], strict=True)] == [
        True
    ] * 6
    assert shipper.next_delay(ShipResult(outcome="retry", retry_after=30.0)) == 30.0
    assert shipper.next_delay(ShipResult(outcome="sent")) == 0.0
    assert shipper.failures == 0


def test_client_error_keeps_records_and_backs_off(
    tmp_path: Path,
    builder: EventBuilder,
    collector: FakeCollector,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector.script = [(400, {}, b'{"error": "unknown field"}'), (401, {}, None)]
    spool, shipper = make(tmp_path, builder, collector.url, pki.ca_pem)
    first = shipper.ship_once()
    assert (first.outcome, first.status) == ("refused", 400)
    assert "REFUSED" in caplog.text and "unknown field" in caplog.text
    assert spool.pending == 5
    delay = shipper.next_delay(first)
    assert 0.025 <= delay <= 0.05  # the maximum step
    assert shipper.ship_once().outcome == "refused"
    assert spool.pending == 5
    assert shipper.ship_once().outcome == "sent"
    assert spool.pending == 0


def test_413_halves_the_batch(
    tmp_path: Path, builder: EventBuilder, collector: FakeCollector, pki: Pki
) -> None:
    collector.script = [(413, {}, None), (413, {}, None)]
    _spool, shipper = make(tmp_path, builder, collector.url, pki.ca_pem, n=8)
    assert shipper.ship_once().outcome == "retry"
    assert shipper.ship_once().outcome == "retry"
    assert shipper.max_events == 2
    assert shipper.drain(10)
    assert [len(r["events"]) for r in collector.requests] == [8, 4, 2, 2, 2, 2]


def test_partial_ack_and_rejected_events(
    tmp_path: Path,
    builder: EventBuilder,
    collector: FakeCollector,
    pki: Pki,
    caplog: pytest.LogCaptureFixture,
) -> None:
    answer = {
        "accepted": 2,
        "duplicates": 0,
        "acked_seq": 3,
        "rejected": [{"index": 2, "event_id": "abc", "reason": "bad ip"}],
    }
    nothing = dict(answer, acked_seq=0, rejected=[])
    collector.script = [
        (200, {}, json.dumps(answer).encode()),
        (200, {}, json.dumps(nothing).encode()),
        (200, {}, b"not json"),
    ]
    spool, shipper = make(tmp_path, builder, collector.url, pki.ca_pem)
    assert shipper.ship_once().acked_seq == 3
    assert "bad ip" in caplog.text
    assert spool.pending == 2
    assert shipper.ship_once().outcome == "retry"  # acked nothing: back off, keep
    assert shipper.ship_once().outcome == "retry"  # no acked_seq: keep
    assert [e["sekimori"]["seq"] for e in collector.requests[1]["events"]] == [4, 5]
    assert shipper.drain(5) and spool.pending == 0


def test_unreachable_and_untrusted_collector(
    tmp_path: Path,
    builder: EventBuilder,
    collector: FakeCollector,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spool, shipper = make(tmp_path, builder, "https://127.0.0.1:1", None)
    assert shipper.ship_once().outcome == "retry"
    other = make_pki(tmp_path / "other", "some other CA")
    _, wrong = make(tmp_path / "w", builder, collector.url, other.ca_pem)
    result = wrong.ship_once()
    assert result.outcome == "retry"
    assert "not trusted" in caplog.text
    assert collector.requests == []
    assert spool.pending == 5


def test_bad_configuration_is_refused(tmp_path: Path, builder: EventBuilder, pki: Pki) -> None:
    with pytest.raises(ConfigError, match="https"):
        make(tmp_path, builder, "http://127.0.0.1:8443", pki.ca_pem, n=0)
    with pytest.raises(ConfigError, match="CA"):
        make(tmp_path, builder, "https://127.0.0.1:8443", tmp_path / "nope.pem", n=0)


def test_client_certificate_is_loaded(tmp_path: Path, builder: EventBuilder, pki: Pki) -> None:
    _, shipper = make(
        tmp_path,
        builder,
        "https://127.0.0.1:8443",
        pki.ca_pem,
        n=0,
        client_cert=pki.cert_pem,
        client_key=pki.key_pem,
    )
    assert shipper.context.verify_mode.name == "CERT_REQUIRED"


def test_parse_retry_after() -> None:
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("999999") == 3600.0


def test_new_events_wake_an_idle_shipper(
    tmp_path: Path, builder: EventBuilder, collector: FakeCollector, pki: Pki
) -> None:
    """With a 60 s idle interval, only the wake-up can deliver the event while we watch."""
    spool, shipper = make(tmp_path, builder, collector.url, pki.ca_pem, n=0, idle_interval=60.0)
    stop, wake = threading.Event(), threading.Event()
    thread = threading.Thread(target=shipper.run, args=(stop,), kwargs={"wake": wake})
    thread.start()
    try:
        spool.append([builder.heartbeat("fresh")])
        wake.set()
        deadline = threading.Event()
        for _ in range(200):  # bounded poll, far below the 60 s idle interval
            if spool.acked_seq == 1:
                break
            deadline.wait(0.05)
        assert spool.acked_seq == 1
        assert [e["message"] for e in collector.events] == ["fresh"]
    finally:
        stop.set()
        wake.set()
        thread.join(10)
    assert not thread.is_alive()
