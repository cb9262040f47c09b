"""The HTTPS ingest API over real TLS, against a collector running in a thread."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.models import EventQuery
from collector.service import CollectorConfig, CollectorThread, build_collector
from collector.validate import Limits
from tests.conftest import batch, build_event

RULE = """
title: Test rule for whoami
id: 0b8f0c4e-2c55-4b5c-9a53-6d8f1d0c0001
status: test
level: high
logsource: {product: linux, category: process_creation}
detection:
  sel: {Image|endswith: /whoami}
  condition: sel
tags: [attack.discovery]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def running(tmp_path: Path) -> Iterator[CollectorThread]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "whoami.yml").write_text(RULE)
    config = CollectorConfig(
        data_dir=tmp_path / "data",
        port=free_port(),
        rule_paths=(rules,),
        limits=Limits(max_body_bytes=64 * 1024, max_events=50),
    )
    thread = CollectorThread(build_collector(config))
    thread.start()
    yield thread
    thread.stop()


def post(
    running: CollectorThread, body: bytes, token: str | None = None, ctype: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    collector = running.collector
    context = ssl.create_default_context(cafile=str(collector.tls.ca_cert))
    conn = http.client.HTTPSConnection("127.0.0.1", collector.config.port, context=context)
    headers = {"Content-Type": ctype, "Authorization": f"Bearer {token or collector.token}"}
    conn.request("POST", "/v1/events", body=body, headers=headers)
    response = conn.getresponse()
    payload = json.loads(response.read() or b"{}")
    conn.close()
    return response.status, payload


def test_ingest_detect_and_idempotent_resend(running: CollectorThread) -> None:
    events = [
        build_event(seq=1, process__executable="/usr/bin/whoami", process__name="whoami"),
        build_event(seq=2),
    ]
    body = json.dumps(batch(events)).encode()
    status, answer = post(running, body)
    assert status == 200
    assert answer == {"accepted": 2, "duplicates": 0, "rejected": [], "acked_seq": 2}
    status, answer = post(running, body)
    assert answer == {"accepted": 0, "duplicates": 2, "rejected": [], "acked_seq": 2}
    store = running.collector.store
    alerts = store.list_alerts()
    assert len(alerts) == 1
    assert alerts[0].title == "Test rule for whoami"
    assert alerts[0].count == 1  # the resend raised nothing new
    assert alerts[0].zone == "internet"
    stored = store.query_events(EventQuery())
    assert stored[0]["sekimori"]["zone"]["host"] == "internet"
    assert "ingested" in stored[0]["event"]


def test_mixed_batch_keeps_valid_events(running: CollectorThread) -> None:
    bad = build_event(seq=2)
    bad["process"]["pid"] = "nope"
    status, answer = post(running, json.dumps(batch([build_event(seq=1), bad])).encode())
    assert status == 200
    assert answer["accepted"] == 1
    assert answer["rejected"] == [
        {
            "index": 1,
            "event_id": bad["event"]["id"],
            "reason": "field 'process.pid' must be an integer, got str",
        }
    ]
    assert answer["acked_seq"] == 2
    (letter,) = running.collector.store.dead_letters()
    assert json.loads(letter.raw)["process"]["pid"] == "nope"


@pytest.mark.parametrize(
    ("body", "kwargs", "status", "error"),
    [
        (b"{oops", {}, 400, "malformed JSON"),
        (b"{}", {"token": "wrong"}, 401, "ingest token"),
        (b"{}", {"ctype": "text/plain"}, 415, "send JSON"),
        (b"[" + b"1," * 40000 + b"1]", {}, 413, "exceeds the limit"),
    ],
)
def test_refusals(
    running: CollectorThread, body: bytes, kwargs: dict[str, str], status: int, error: str
) -> None:
    got_status, answer = post(running, body, **kwargs)
    assert got_status == status
    assert error in answer["error"]


def test_plain_http_and_wrong_ca_are_refused(running: CollectorThread, tmp_path: Path) -> None:
    port = running.collector.config.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        conn.request("GET", "/v1/health")
        conn.getresponse().read()
    context = ssl.create_default_context()  # system CAs do not know the collector CA
    conn = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=5)
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/v1/health")
