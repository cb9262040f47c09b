"""Beacon scoring (RITA-style statistics) over network_flow events built in the sensor schema."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from agents.errors import ConfigError
from agents.schema import to_iso
from collector.analytics.beacon import (
    BEACON_RULE_ID,
    beacon_findings,
    bowley_score,
    flows_frame,
    mad_score,
    score_beacons,
)
from collector.analytics.config import BeaconThresholds
from tests.conftest import build_event

T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
SENSOR = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"
PC1, OUTSIDE, PROXY = "10.10.0.5", "203.0.113.80", "198.51.100.10"


def flow_event(
    start: datetime,
    src: str,
    dst: str,
    dport: int | None = 443,
    *,
    sport: int = 40000,
    state: str = "closed",
    transport: str = "tcp",
    sent: int = 320,
    received: int = 1400,
    duration: float = 0.2,
    action: str = "flow_end",
) -> dict[str, Any]:
    """A sealed network_flow event exactly as the sensor emits it (before zone enrichment)."""
    end = start + timedelta(seconds=duration)
    ports: dict[str, Any] = {}
    if dport is not None:
        ports = {"source__port": sport, "destination__port": dport}
    return build_event(
        "network_flow",
        agent_id=SENSOR,
        host="router",
        host_ip="10.99.0.1",
        timestamp=to_iso(end),
        event__action=action,
        event__category=["network"],
        event__type=["connection"],
        event__dataset="sekimori.flow",
        event__start=to_iso(start),
        event__end=to_iso(end),
        event__duration=int(duration * 1e9),
        network__transport=transport,
        network__bytes=sent + received,
        network__packets=8,
        source__ip=src,
        source__bytes=sent,
        source__packets=4,
        destination__ip=dst,
        destination__bytes=received,
        destination__packets=4,
        sekimori__flow__state=state,
        sekimori__sensor__interface="veth-rt0",
        **ports,
    )


def periodic(
    src: str,
    dst: str,
    *,
    count: int,
    interval: float,
    jitter: float = 0.0,
    dport: int = 443,
    seed: int = 7,
    sent: int = 320,
    size_jitter: float = 0.0,
    start: datetime = T0,
) -> list[dict[str, Any]]:
    """``count`` connections every ``interval`` s, each gap jittered by up to ±``jitter``."""
    rng = random.Random(seed)
    events, at = [], start
    for i in range(count):
        size = round(sent * (1 + rng.uniform(-size_jitter, size_jitter)))
        events.append(flow_event(at, src, dst, dport, sport=41000 + i, sent=size))
        at += timedelta(seconds=interval * (1 + rng.uniform(-jitter, jitter)))
    return events


def browsing(src: str, dst: str, *, count: int, seed: int = 3) -> list[dict[str, Any]]:
    """Irregular (exponential gaps, mean 30 s) connections of log-normal sizes."""
    rng = random.Random(seed)
    events, at = [], T0
    for i in range(count):
        size = int(rng.lognormvariate(7, 1.2))
        events.append(flow_event(at, src, dst, 443, sport=42000 + i, sent=size))
        at += timedelta(seconds=rng.expovariate(1 / 30))
    return events


def zoned(events: list[dict[str, Any]], dst_zone: str, role: str | None = None) -> list[Any]:
    """What the collector's enrichment adds (tests of the scoring alone; the runner tests use
    the real ZoneMap)."""
    for event in events:
        event["sekimori"]["zone"] = {"source": "internet", "destination": dst_zone}
        if role:
            event["sekimori"]["role"] = {"destination": role}
    return events


def test_bowley_and_mad_match_ritas_definitions() -> None:
    symmetric = np.array([10.0, 20, 30, 40, 50])
    assert bowley_score(symmetric, 10) == (0.0, 1.0)
    skewed = np.array([10.0, 11, 12, 40, 100])  # Q1=11, Q2=12, Q3=40: (11+40-24)/29
    skew, score = bowley_score(skewed, 10)
    assert skew == pytest.approx(27 / 29) and score == pytest.approx(2 / 29)
    assert bowley_score(skewed, 100) == (0.0, 1.0)  # IQR under the floor: no skew
    mad, score = mad_score(np.array([60.0, 60, 61, 59, 90]), 0.0, 1.0)
    assert mad == 1.0 and score == pytest.approx(59 / 60)
    assert mad_score(np.array([0.0, 0.0, 0.5]), 0.0, 1.0) == (0.0, 0.0)  # median < 1: default


def test_a_jittered_beacon_to_the_outside_is_found() -> None:
    events = zoned(periodic(PC1, OUTSIDE, count=30, interval=60, jitter=0.2), "external")
    t = BeaconThresholds()
    (score,) = score_beacons(flows_frame(events), t)
    assert (score.src, score.dst, score.dport, score.connections) == (PC1, OUTSIDE, 443, 30)
    assert score.interval == pytest.approx(60, rel=0.1)
    assert score.timestamp_score >= 0.85 and score.datasize_score == 1.0
    assert score.count_score == 1.0 and score.score >= t.score
    (finding,) = beacon_findings([score], t)
    assert finding.rule_id == BEACON_RULE_ID
    assert finding.entity == f"{PC1}->{OUTSIDE}:443"
    assert finding.host == PC1 and finding.zone == "internet"
    assert finding.count == 30 and len(finding.event_ids) == 30
    assert "30 tcp connections" in finding.description
    assert "not through the security-cloud proxy" in finding.description
    assert finding.first_seen == T0


@pytest.mark.parametrize("seed", range(10))
def test_lab_shaped_beacons_alert_for_any_jitter_draw(seed: int) -> None:
    """The lab: 8 connections about 2 s apart with ±25 % jitter and sizes ±20 %."""
    t = BeaconThresholds(min_connections=8)
    events = periodic(PC1, OUTSIDE, count=8, interval=2, jitter=0.25, size_jitter=0.2, seed=seed)
    findings = beacon_findings(score_beacons(flows_frame(zoned(events, "external")), t), t)
    assert [f.entity for f in findings] == [f"{PC1}->{OUTSIDE}:443"]


@pytest.mark.parametrize("seed", range(10))
def test_irregular_browsing_is_scored_but_not_a_beacon(seed: int) -> None:
    t = BeaconThresholds()
    events = zoned(browsing(PC1, OUTSIDE, count=60, seed=seed), "external")
    (score,) = score_beacons(flows_frame(events), t)
    assert score.connections == 60
    assert score.timestamp_score < t.min_timestamp_score
    assert beacon_findings([score], t) == []


def test_regular_traffic_to_internal_zones_and_sanctioned_services_never_alerts() -> None:
    t = BeaconThresholds()
    events = (
        zoned(periodic(PC1, "10.99.0.10", count=120, interval=1.0, dport=8443), "dmz")
        + zoned(periodic(PC1, "10.99.0.123", count=30, interval=64, dport=123), "dmz")
        + zoned(periodic(PC1, PROXY, count=40, interval=30, dport=8080), "external",
                "security_cloud_proxy")
        + zoned(periodic(PC1, "198.51.100.123", count=30, interval=64, dport=123), "external",
                "ntp")
    )  # fmt: skip
    scores = score_beacons(flows_frame(events), t)
    assert len(scores) == 4 and all(s.score >= t.score for s in scores)  # all regular ...
    assert beacon_findings(scores, t) == []  # ... none a beacon to the outside


def test_too_few_connections_are_not_scored() -> None:
    t = BeaconThresholds()
    events = zoned(periodic(PC1, OUTSIDE, count=9, interval=60), "external")
    assert score_beacons(flows_frame(events), t) == []
    assert len(score_beacons(flows_frame(events), BeaconThresholds(min_connections=9))) == 1


def test_updates_and_the_end_of_one_flow_count_as_one_connection() -> None:
    start = T0
    update = flow_event(start, PC1, OUTSIDE, sport=40001, duration=60, action="flow_update")
    end = flow_event(start, PC1, OUTSIDE, sport=40001, duration=95)
    other = flow_event(start + timedelta(seconds=5), PC1, OUTSIDE, sport=40002)
    frame = flows_frame([update, end, other])
    assert len(frame) == 2
    assert frame.iloc[0]["event_id"] == end["event"]["id"]


def test_per_port_grouping_can_be_turned_off() -> None:
    events = periodic(PC1, OUTSIDE, count=6, interval=60, dport=443)
    events += periodic(PC1, OUTSIDE, count=6, interval=60, dport=8443,
                       start=T0 + timedelta(seconds=30))  # fmt: skip
    by_port = score_beacons(flows_frame(events), BeaconThresholds(min_connections=6))
    assert sorted(s.dport or 0 for s in by_port) == [443, 8443]
    t = BeaconThresholds(min_connections=6, per_port=False)
    (pair,) = score_beacons(flows_frame(events), t)
    assert (pair.dport, pair.connections) == (None, 12)


def test_icmp_flows_without_ports_are_scored() -> None:
    events = [
        flow_event(T0 + timedelta(seconds=10 * i), PC1, OUTSIDE, None, transport="icmp",
                   state="icmp", sent=84, received=84)
        for i in range(12)
    ]  # fmt: skip
    (score,) = score_beacons(flows_frame(zoned(events, "external")), BeaconThresholds())
    assert (score.transport, score.dport, score.count_score) == ("icmp", None, 0.6)
    assert score.timestamp_score == score.datasize_score == 1.0 and score.score == 0.9


@pytest.mark.parametrize(
    "bad",
    [
        {"min_connections": 3},
        {"timestamp_weight": 0.6},
        {"score": 0.0},
        {"min_timestamp_score": 1.5},
    ],
)
def test_bad_thresholds_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        BeaconThresholds(**bad)


def test_an_unmapped_collector_address_with_its_role_is_not_outside() -> None:
    """Agents ship to the collector every second; the collector's address may sit in no zone
    (unmapped), but zones.yaml names it: designated infrastructure is never a beacon target."""
    t = BeaconThresholds()
    shipping = zoned(periodic(PC1, "172.31.0.10", count=120, interval=1.0, dport=8443),
                     "unmapped", "collector")  # fmt: skip
    unknown = zoned(periodic(PC1, "172.31.0.99", count=20, interval=5.0, dport=4444), "unmapped")
    scores = score_beacons(flows_frame(shipping + unknown), t)
    assert [f.entity for f in beacon_findings(scores, t)] == [f"{PC1}->172.31.0.99:4444"]
