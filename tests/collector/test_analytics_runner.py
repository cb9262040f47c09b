"""The analytics job end to end: sensor events through the real ingest pipeline (validation,
zone enrichment) into a real SqliteStore, one run, exactly the expected alerts."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.alerts import AlertManager
from collector.analytics.beacon import BEACON_RULE_ID
from collector.analytics.config import AnalyticsConfig, BeaconThresholds, DnsTunnelThresholds
from collector.analytics.dnstunnel import DNS_TUNNEL_RULE_ID
from collector.analytics.runner import AnalyticsRunner
from collector.models import Alert
from collector.pipeline import IngestPipeline
from collector.service import CollectorConfig, CollectorThread, build_collector
from collector.store.sqlite import SqliteStore
from collector.zones import parse_zones
from detections import RuleSet, default_rules_dir, load_rules
from tests.collector.test_analytics_beacon import browsing, flow_event, periodic
from tests.collector.test_analytics_dns import dns_event, normal_lookups, tunnel
from tests.conftest import batch
from tests.support import wait_for

SENSOR = "5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e"
T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)
PC1, PC2, LGWAN_SRV, MN_SRV = "10.10.0.5", "10.10.0.6", "10.20.0.10", "10.30.0.12"
OUTSIDE, PROXY, RESOLVER, COLLECTOR = "203.0.113.80", "198.51.100.10", "10.99.0.53", "10.99.0.10"
VERTICAL = "d90e485d-bd11-48cf-833c-3951f15e6bf2"
HORIZONTAL = "f83276db-0f6b-4548-8520-d233de405caa"
# The lab's zones (collector/lab generates the same shape from its topology).
ZONES = parse_zones(
    {
        "zones": {
            "internet": {"cidrs": ["10.10.0.0/16"]},
            "lgwan": {"cidrs": ["10.20.0.0/16"]},
            "mynumber": {"cidrs": ["10.30.0.0/16"]},
            "infra": {"cidrs": ["10.99.0.0/24"]},
        },
        "roles": {
            "security_cloud_proxy": [PROXY],
            "dns_resolvers": [RESOLVER],
            "ntp": ["10.99.0.123"],
            "collector": [COLLECTOR],
        },
    }
)
LAB = AnalyticsConfig(
    interval=2.0,
    window=timedelta(minutes=10),
    beacon=BeaconThresholds(min_connections=8),
    dns=DnsTunnelThresholds(min_unique_subdomains=30),
)


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    loaded = load_rules([default_rules_dir()])
    assert loaded.errors == [] and loaded.correlations
    return loaded


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    opened = SqliteStore(tmp_path / "sekimori.db")
    yield opened
    opened.close()


def ingest(store: SqliteStore, rules: RuleSet, events: list[dict[str, Any]]) -> None:
    """Through the real pipeline: validation against agents.schema, zone enrichment, store."""
    pipeline = IngestPipeline(store, ZONES, rules, AlertManager(store))
    for start in range(0, len(events), 500):
        chunk = events[start : start + 500]
        answer = pipeline.ingest(json.dumps(batch(chunk, agent_id=SENSOR)).encode())
        assert answer["rejected"] == [] and answer["accepted"] == len(chunk), answer


def by_rule(alerts: list[Alert]) -> dict[str, list[Alert]]:
    out: dict[str, list[Alert]] = {}
    for alert in alerts:
        out.setdefault(alert.rule_id, []).append(alert)
    return out


def benign_baseline() -> list[dict[str, Any]]:
    """Periodic internal traffic, web via the proxy, normal DNS, a few refused connections."""
    events = periodic(PC1, COLLECTOR, count=240, interval=1.0, dport=8443)  # agent shipping
    events += periodic(PC2, COLLECTOR, count=240, interval=1.0, dport=8443, seed=2)
    events += periodic(PC1, "10.99.0.123", count=4, interval=64, dport=123)  # NTP, low count
    events += periodic(PC1, RESOLVER, count=6, interval=30, dport=53)  # resolver, low count
    events += periodic(PC2, PROXY, count=60, interval=5, dport=8080)  # polling via the proxy
    events += browsing(PC1, PROXY, count=50)
    events += browsing(PC2, OUTSIDE, count=40, seed=11)  # irregular direct connections
    events += normal_lookups(200) + normal_lookups(100, src=PC2)
    events += [
        flow_event(T0 + timedelta(seconds=20 * i), PC1, LGWAN_SRV, 443 + i, sport=45000 + i,
                   state="rejected")
        for i in range(4)
    ]  # fmt: skip
    return [e for e in events if e["@timestamp"] <= NOW.isoformat().replace("+00:00", "Z")]


def test_the_benign_baseline_raises_nothing(store: SqliteStore, rules: RuleSet) -> None:
    ingest(store, rules, benign_baseline())
    assert AnalyticsRunner(store, LAB, rules).run(now=NOW) == []
    assert store.list_alerts() == []


def test_attacks_raise_exactly_the_expected_alerts(store: SqliteStore, rules: RuleSet) -> None:
    beacon = periodic(
        PC1, OUTSIDE, count=8, interval=2, jitter=0.25, start=T0 + timedelta(minutes=2)
    )
    dns = tunnel("t.example.net", count=40, every=0.5, start=T0 + timedelta(minutes=3))
    scan = [
        flow_event(T0 + timedelta(minutes=1, seconds=i * 0.2), PC2, LGWAN_SRV, 1 + i,
                   sport=50000 + i, state="syn_only" if i % 3 else "rejected")
        for i in range(40)
    ]  # fmt: skip
    ingest(store, rules, benign_baseline() + beacon + dns + scan)
    raised = AnalyticsRunner(store, LAB, rules).run(now=NOW)
    found = by_rule(raised)
    assert sorted(found) == sorted([BEACON_RULE_ID, DNS_TUNNEL_RULE_ID, VERTICAL])
    (b,) = found[BEACON_RULE_ID]
    assert (b.title, b.host, b.zone, b.entity) == (
        "C2 Beaconing Suspected",
        PC1,
        "internet",
        f"{PC1}->{OUTSIDE}:443",
    )
    assert set(b.event_ids) == {e["event"]["id"] for e in beacon}
    assert "8 tcp connections" in b.description and "beacon score" in b.description
    (d,) = found[DNS_TUNNEL_RULE_ID]
    assert (d.title, d.host, d.zone, d.entity) == (
        "DNS Tunnelling Suspected",
        PC1,
        "internet",
        f"{PC1}->example.net",
    )
    assert set(d.event_ids) == {e["event"]["id"] for e in dns}
    assert "entropy" in d.description
    (v,) = found[VERTICAL]
    assert (v.host, v.zone, v.entity, v.level) == (PC2, "internet", f"{PC2}->{LGWAN_SRV}", "high")
    assert v.count == 15 and set(v.event_ids) <= {e["event"]["id"] for e in scan}
    assert store.list_alerts(limit=100) and len(store.list_alerts(limit=100)) == 3


def test_a_horizontal_scan_and_an_internet_to_mynumber_attempt(
    store: SqliteStore, rules: RuleSet
) -> None:
    sweep = [
        flow_event(T0 + timedelta(seconds=i), PC1, f"10.20.0.{100 + i}", 22, sport=51000 + i,
                   state="syn_only")
        for i in range(10)
    ]  # fmt: skip
    into_mn = flow_event(T0, PC2, MN_SRV, 445, state="syn_only")
    ingest(store, rules, [*sweep, into_mn])
    streamed = store.list_alerts()  # the single-event rule fires at ingest, like every rule
    assert [a.title for a in streamed] == [
        "Connection Attempt From the Internet Segment Into the My Number Segment (Network Sensor)"
    ]
    raised = AnalyticsRunner(store, LAB, rules).run(now=NOW)
    (h,) = raised
    assert (h.rule_id, h.entity, h.count) == (HORIZONTAL, PC1, 8)


def test_runs_keep_one_alert_per_spell_and_never_reopen_a_closed_one(
    store: SqliteStore, rules: RuleSet
) -> None:
    def beacon(start: datetime, seed: int) -> list[dict[str, Any]]:
        return periodic(PC1, OUTSIDE, count=10, interval=2, jitter=0.2, start=start, seed=seed)

    ingest(store, rules, beacon(T0, 1))
    runner = AnalyticsRunner(store, LAB, rules)
    (first,) = runner.run(now=T0 + timedelta(minutes=1))
    (again,) = runner.run(now=T0 + timedelta(minutes=1, seconds=2))
    assert again.id == first.id
    ingest(store, rules, beacon(T0 + timedelta(seconds=20), 2))  # the beacon goes on
    (longer,) = runner.run(now=T0 + timedelta(minutes=2))
    assert longer.id == first.id and longer.last_seen > first.last_seen
    assert len(longer.event_ids) == 20
    # a restarted collector (a new runner) finds the open alert of the spell again
    (restarted,) = AnalyticsRunner(store, LAB, rules).run(now=T0 + timedelta(minutes=2))
    assert restarted.id == first.id
    store.set_alert_status(first.id, "closed", "true_positive")
    ingest(store, rules, beacon(T0 + timedelta(seconds=40), 3))
    assert runner.run(now=T0 + timedelta(minutes=3)) == []
    assert AnalyticsRunner(store, LAB, rules).run(now=T0 + timedelta(minutes=3)) == []
    assert store.get_alert(first.id).status == "closed"  # type: ignore[union-attr]
    # quiet for longer than the window, then beaconing again: a new spell, a new alert
    later = T0 + timedelta(minutes=30)
    ingest(store, rules, beacon(later, 4))
    (spell2,) = runner.run(now=later + timedelta(minutes=1))
    assert spell2.id != first.id
    assert len(store.list_alerts(limit=100)) == 2
    assert len(runner.spells) == 1  # the ended spell was forgotten (bounded memory)


def test_events_older_than_the_window_are_not_read(store: SqliteStore, rules: RuleSet) -> None:
    ingest(store, rules, periodic(PC1, OUTSIDE, count=12, interval=2))
    runner = AnalyticsRunner(store, LAB, rules)
    assert runner.run(now=T0 + LAB.window + timedelta(minutes=1)) == []
    assert len(runner.run(now=T0 + timedelta(minutes=1))) == 1


def test_the_collector_runs_the_job_periodically(tmp_path: Path) -> None:
    """CollectorConfig.analytics wires the job into a running collector (no HTTPS traffic
    needed: events are written to its store directly, as the ingest path would)."""
    from tests.support import free_port

    config = CollectorConfig(
        data_dir=tmp_path / "data",
        port=free_port(),
        analytics=replace(LAB, interval=0.2, window=timedelta(days=36500)),
    )
    assert CollectorConfig(data_dir=tmp_path).analytics == AnalyticsConfig()
    collector = build_collector(config)
    start = datetime.now(UTC) - timedelta(seconds=30)
    events = dns_events_now(start)
    collector.store.write_events(events)
    thread = CollectorThread(collector)
    thread.start()
    try:
        alerts = wait_for(collector.store.list_alerts, "an analytics alert", timeout=30)
        assert [a.rule_id for a in alerts] == [DNS_TUNNEL_RULE_ID]
    finally:
        thread.stop()


def dns_events_now(start: datetime) -> list[dict[str, Any]]:
    rng = random.Random(1)
    return [
        {**event, "sekimori": {**event["sekimori"], "zone": {"source": "internet"}}}
        for event in (
            dns_event(start + timedelta(seconds=i * 0.5), f"{rng.getrandbits(96):024x}.x.example.net",
                      dns_id=i)
            for i in range(40)
        )
    ]  # fmt: skip


def test_a_disabled_job_raises_nothing(tmp_path: Path) -> None:
    from tests.support import free_port

    config = CollectorConfig(
        data_dir=tmp_path / "data",
        port=free_port(),
        analytics=replace(LAB, enabled=False, interval=0.1, window=timedelta(days=36500)),
    )
    collector = build_collector(config)
    collector.store.write_events(dns_events_now(datetime.now(UTC)))
    thread = CollectorThread(collector)
    thread.start()
    try:
        time.sleep(1.0)  # ten intervals of an enabled job; not a timed assertion
        assert collector.store.list_alerts() == []
    finally:
        thread.stop()


def test_windows_judged_at_their_end_wait_until_they_are_over(tmp_path: Path) -> None:
    """An ``lt`` correlation ("fewer than 3 flows in 60 s") is only judged once its window
    has ended, not at the end of whatever the store held at run time."""
    from collector.analytics.correlate import correlation_findings

    path = tmp_path / "few.yml"
    path.write_text(
        "title: any flow\nid: 2b0f3a52-8d4e-4f6a-9c1b-7e5d3a2f1c0b\nname: any_flow\n"
        "logsource: {category: network_flow, product: sekimori}\n"
        "detection: {sel: {network.transport: tcp}, condition: sel}\n"
        "---\n"
        "title: few flows\nid: 3c1e4b63-9e5f-4a7b-8d2c-8f6e4b3a2d1c\n"
        "correlation:\n  type: event_count\n  rules: [any_flow]\n  group-by: [source.ip]\n"
        "  timespan: 60s\n  condition: {lt: 3}\n",
        encoding="utf-8",
    )
    ruleset = load_rules([path])
    assert ruleset.errors == [] and len(ruleset.correlations) == 1
    events = [flow_event(T0, PC1, OUTSIDE), flow_event(T0 + timedelta(seconds=5), PC1, OUTSIDE)]
    ids = [e["event"]["id"] for e in events]
    during = correlation_findings(ruleset, lambda kinds: events, now=T0 + timedelta(seconds=30))
    assert during == []
    (after,) = correlation_findings(ruleset, lambda kinds: events, now=T0 + timedelta(minutes=2))
    assert (after.title, after.entity, after.count) == ("few flows", PC1, 2)
    assert set(after.event_ids) == set(ids)
