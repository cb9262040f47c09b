"""The HTTPS ingest API over real mutual TLS, against a collector running in a thread."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.models import EventQuery
from collector.service import CollectorThread
from collector.validate import Limits
from tests.conftest import batch, build_event
from tests.security.kit import client_for, enroll_agent, start_collector

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


@pytest.fixture
def running(tmp_path: Path) -> Iterator[CollectorThread]:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "whoami.yml").write_text(RULE)
    thread = start_collector(
        tmp_path / "data",
        rule_paths=(rules,),
        limits=Limits(max_body_bytes=64 * 1024, max_events=50),
    )
    thread.identity = enroll_agent(thread, tmp_path / "agent")  # type: ignore[attr-defined]
    yield thread
    thread.stop()


def post(
    running: CollectorThread, body: bytes, *, cert: bool = True, ctype: str = "application/json"
) -> tuple[int, dict[str, Any]]:
    identity = running.identity if cert else None  # type: ignore[attr-defined]
    return client_for(running, identity).call("POST", "/v1/events", body, {"Content-Type": ctype})


def ev(**kwargs: Any) -> dict[str, Any]:
    return build_event(agent_id=AGENT, **kwargs)


def envelope(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(batch(events, agent_id=AGENT)).encode()


AGENT = ""


@pytest.fixture(autouse=True)
def _agent(running: CollectorThread) -> None:
    global AGENT
    AGENT = running.identity.agent_id  # type: ignore[attr-defined]


def test_ingest_detect_and_idempotent_resend(running: CollectorThread) -> None:
    events = [
        ev(seq=1, process__executable="/usr/bin/whoami", process__name="whoami"),
        ev(seq=2),
    ]
    body = envelope(events)
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
    bad = ev(seq=2)
    bad["process"]["pid"] = "nope"
    status, answer = post(running, envelope([ev(seq=1), bad]))
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
        (b"{}", {"cert": False}, 401, "client certificate required"),
        (b"{}", {"ctype": "text/plain"}, 415, "send JSON"),
        (b"[" + b"1," * 40000 + b"1]", {}, 413, "exceeds the limit"),
    ],
)
def test_refusals(
    running: CollectorThread, body: bytes, kwargs: dict[str, Any], status: int, error: str
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
