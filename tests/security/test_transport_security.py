"""Zero-trust transport: every way in without a valid, unrevoked identity is refused.

A real collector (thread) on loopback with real mutual TLS; clients are enrolled through the
real ``/v1/enroll`` path with one-time tokens.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.errors import AuthError, ConfigError
from agents.identity import enroll, load_identity, renew
from agents.schema import HEADER_SENT_AT, to_iso
from collector.admin import create_token, list_agents, revoke_agent
from collector.service import CollectorThread
from tests.agents.agent_testkit import make_pki
from tests.conftest import batch, build_event
from tests.security.kit import Client, client_for, enroll_agent, start_collector


@pytest.fixture
def running(tmp_path: Path) -> Iterator[CollectorThread]:
    thread = start_collector(tmp_path / "data", revocation_refresh=0.2)
    yield thread
    thread.stop()


def body_for(agent_id: str, seqs: list[int], claim: str | None = None) -> bytes:
    events = [build_event("heartbeat", agent_id=claim or agent_id, seq=s) for s in seqs]
    return json.dumps(batch(events, agent_id=claim or agent_id)).encode()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/events"),
        ("GET", "/v1/commands"),
        ("POST", "/v1/renew"),
        ("POST", "/v1/commands/x/result"),
    ],
)
def test_no_client_certificate_is_401(running: CollectorThread, method: str, path: str) -> None:
    status, answer = client_for(running, None).call(method, path, b"{}")
    assert status == 401
    assert "client certificate required" in answer["error"]


def test_certificate_from_another_ca_fails_the_handshake(
    running: CollectorThread, tmp_path: Path
) -> None:
    foreign = make_pki(tmp_path / "foreign")
    bundle = tmp_path / "foreign.pem"
    bundle.write_bytes(foreign.key_pem.read_bytes() + foreign.cert_pem.read_bytes())
    client = Client(running.collector.config.port, running.collector.tls.ca_cert, bundle)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        client.call("POST", "/v1/events", b"{}")


def test_expired_certificate_fails_the_handshake(tmp_path: Path) -> None:
    thread = start_collector(tmp_path / "data", client_validity=timedelta(seconds=1))
    try:
        identity = enroll_agent(thread, tmp_path / "agent")
        time.sleep(1.5)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            client_for(thread, identity).call(
                "POST", "/v1/events", body_for(identity.agent_id, [1])
            )
    finally:
        thread.stop()


def test_revocation_takes_effect_within_seconds(running: CollectorThread, tmp_path: Path) -> None:
    identity = enroll_agent(running, tmp_path / "agent")
    client = client_for(running, identity)
    assert client.call("POST", "/v1/events", body_for(identity.agent_id, [1]))[0] == 200
    revoke_agent(
        running.collector.config.data_dir, identity.agent_id, "stolen laptop"
    )  # as the CLI
    revoked_at = time.monotonic()
    status = 200
    while status == 200 and time.monotonic() - revoked_at < 5:
        status, answer = client.call("POST", "/v1/events", body_for(identity.agent_id, [2]))
    assert status == 403, "revocation not effective within 5 s"
    assert "revoked" in answer["error"]
    assert client.call("GET", "/v1/commands")[0] == 403
    with pytest.raises(AuthError):
        renew(identity, tmp_path / "agent")
    (record,) = list_agents(running.collector.config.data_dir)
    assert record.revoked is not None


def test_tokens_are_single_use_and_expire(running: CollectorThread, tmp_path: Path) -> None:
    collector = running.collector
    data_dir = collector.config.data_dir
    token = create_token(data_dir, ttl="1h", uses=1, zone="internet")
    first = enroll(collector.url, token, state_dir=tmp_path / "a", ca_file=collector.tls.ca_cert)
    assert collector.registry.get(first.agent_id).zone == "internet"  # type: ignore[union-attr]
    with pytest.raises(AuthError, match="already used"):
        enroll(collector.url, token, state_dir=tmp_path / "b", ca_file=collector.tls.ca_cert)
    short = collector.registry.create_token(ttl=0.3)
    time.sleep(0.5)
    with pytest.raises(AuthError, match="expired"):
        enroll(collector.url, short, state_dir=tmp_path / "c", ca_file=collector.tls.ca_cert)
    with pytest.raises(AuthError, match="unknown"):
        enroll(collector.url, "skt_guess", state_dir=tmp_path / "d", ca_file=collector.tls.ca_cert)
    assert load_identity(tmp_path / "b") is None  # nothing half-enrolled


def test_an_enrolled_id_cannot_be_taken_over(running: CollectorThread, tmp_path: Path) -> None:
    identity = enroll_agent(running, tmp_path / "a")
    thief = tmp_path / "thief"
    thief.mkdir()
    (thief / "agent_id").write_text(identity.agent_id + "\n")  # claims the victim's id
    token = running.collector.registry.create_token(ttl=60)
    with pytest.raises(Exception, match="409"):
        enroll(running.collector.url, token, state_dir=thief, ca_file=running.collector.tls.ca_cert)


def test_spoofed_agent_id_is_refused(running: CollectorThread, tmp_path: Path) -> None:
    mallory = enroll_agent(running, tmp_path / "mallory")
    victim = enroll_agent(running, tmp_path / "victim")
    client = client_for(running, mallory)
    status, answer = client.call(
        "POST", "/v1/events", body_for(mallory.agent_id, [1], claim=victim.agent_id)
    )
    assert status == 403
    assert "claims agent" in answer["error"]
    # an honest envelope hiding one event of the victim: that event alone is rejected
    events = [
        build_event("heartbeat", agent_id=mallory.agent_id, seq=1),
        build_event("heartbeat", agent_id=victim.agent_id, seq=2),
    ]
    status, answer = client.call(
        "POST", "/v1/events", json.dumps(batch(events, agent_id=mallory.agent_id)).encode()
    )
    assert status == 200
    assert answer["accepted"] == 1
    assert "claims agent" in answer["rejected"][0]["reason"]
    assert running.collector.store.count_events() == 1


def test_replay_is_a_no_op_and_regressions_and_skew_are_recorded(
    running: CollectorThread, tmp_path: Path
) -> None:
    identity = enroll_agent(running, tmp_path / "agent")
    client = client_for(running, identity)
    body = body_for(identity.agent_id, [10, 11, 12])
    assert client.call("POST", "/v1/events", body)[1]["accepted"] == 3
    status, answer = client.call("POST", "/v1/events", body)
    assert (status, answer["accepted"], answer["duplicates"]) == (200, 0, 3)
    skewed = to_iso(datetime.now(UTC) - timedelta(hours=1))
    status, _ = client.call(
        "POST", "/v1/events", body_for(identity.agent_id, [3]), {HEADER_SENT_AT: skewed}
    )
    assert status == 200
    kinds = [a.kind for a in running.collector.registry.anomalies(identity.agent_id)]
    assert kinds == ["seq_regression", "clock_skew"]
    assert running.collector.registry.get(identity.agent_id).max_seq == 12  # type: ignore[union-attr]


def test_renewal_rotates_key_and_certificate(running: CollectorThread, tmp_path: Path) -> None:
    state = tmp_path / "agent"
    before = enroll_agent(running, state)
    old_pem = before.cert_file.read_bytes()
    after = renew(before, state)
    assert after.agent_id == before.agent_id
    assert after.cert_file.read_bytes() != old_pem
    assert after.cert_file.stat().st_mode & 0o777 == 0o600
    assert client_for(running, after).call("GET", "/v1/commands") == (200, {"commands": []})


def test_bad_enrollment_requests_are_400(running: CollectorThread) -> None:
    client = client_for(running, None)
    token = running.collector.registry.create_token(ttl=60)
    assert client.call("POST", "/v1/enroll", {"token": token, "csr": "nope"})[0] == 400
    assert client.call("POST", "/v1/enroll", b"[1]")[0] == 400
    assert client.call("POST", "/v1/enroll", {"token": 1, "csr": 2})[0] == 400
    # the token survived the malformed attempts? No: the CSR is parsed before the token is spent
    assert running.collector.registry.read("SELECT uses_left FROM tokens")[0][0] == 1


def test_enrolling_twice_from_one_state_dir_is_refused(
    running: CollectorThread, tmp_path: Path
) -> None:
    enroll_agent(running, tmp_path / "agent")
    with pytest.raises(ConfigError, match="already enrolled"):
        enroll_agent(running, tmp_path / "agent")
