"""The network_scan rules: routing of the sensor's kinds, the correlation samples, and the
vertical/horizontal scan windows over synthetic flow sequences (the real streaming engine)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from sigma.rule import SigmaLogSource

from agents.schema import to_iso
from detections import CorrelationEngine, CorrelationMatch, RuleSet, default_rules_dir, load_rules
from detections.logsources import LogsourceRouter

SCAN_DIR = default_rules_dir() / "network_scan"
BASE_ID = "cd2a10f2-9b5c-4571-9444-c8cd69a337f2"
VERTICAL = "d90e485d-bd11-48cf-833c-3951f15e6bf2"
HORIZONTAL = "f83276db-0f6b-4548-8520-d233de405caa"
MYNUMBER = "ce822cac-5b57-4bd2-a66f-383a110d19cc"
T0 = datetime(2026, 11, 26, 6, 0, tzinfo=UTC)
PC, SRV = "10.10.0.5", "10.20.0.10"


@cache
def corpus() -> RuleSet:
    loaded = load_rules([default_rules_dir()])
    assert loaded.errors == [] and loaded.skipped == []
    return loaded


def flow(
    at: float,
    dst: str,
    dport: int,
    state: str = "syn_only",
    src: str = PC,
    *,
    src_zone: str = "internet",
    dst_zone: str = "lgwan",
) -> dict[str, Any]:
    return {
        "@timestamp": to_iso(T0 + timedelta(seconds=at)),
        "event": {"id": f"f-{src}-{dst}-{dport}-{at}", "action": "flow_end"},
        "sekimori": {
            "kind": "network_flow",
            "flow": {"state": state},
            "zone": {"source": src_zone, "destination": dst_zone},
        },
        "network": {"transport": "tcp"},
        "source": {"ip": src, "port": 40000 + dport},
        "destination": {"ip": dst, "port": dport},
    }


def run(events: list[dict[str, Any]]) -> list[CorrelationMatch]:
    engine = CorrelationEngine(corpus())
    out: list[CorrelationMatch] = []
    for event in events:
        out.extend(engine.process(event))
    return out + engine.flush()


def fired(events: list[dict[str, Any]]) -> list[str]:
    return [m.corr_id for m in run(events)]


def test_the_sensor_kinds_are_routed_and_other_products_are_reported() -> None:
    router = LogsourceRouter()
    assert router.route(SigmaLogSource(category="dns")).kinds == {"dns"}
    assert router.route(SigmaLogSource(category="network_flow", product="sekimori")).kinds == {
        "network_flow"
    }
    assert router.route(SigmaLogSource(category="network_flow", product="linux")).kinds == {
        "network_flow"
    }
    unproduced = router.route(SigmaLogSource(category="dns", product="zeek"))
    assert not unproduced.supported and "product 'zeek'" in (unproduced.reason or "")
    # Flows never reach rules written for endpoint connections (and vice versa).
    connection = router.route(SigmaLogSource(category="network_connection", product="linux"))
    assert connection.kinds == {"network_connection"}


def test_sigma_dns_field_names_reach_the_sensor_fields(tmp_path: Path) -> None:
    rule = tmp_path / "dns.yml"
    rule.write_text(
        "title: txt exec\nid: 6d1f0c2e-1b7a-4c9e-8f3d-2a5b6c7d8e9f\n"
        "logsource: {category: dns}\n"
        "detection:\n  sel:\n    record_type: TXT\n    query|endswith: .example.net\n"
        "    answer|contains: IEX\n  condition: sel\n",
        encoding="utf-8",
    )
    loaded = load_rules([rule])
    assert loaded.errors == [] and loaded.skipped == []
    (compiled,) = loaded
    assert set(compiled.fields) == {"dns.question.type", "dns.question.name", "dns.answers.data"}
    event = {
        "sekimori": {"kind": "dns"},
        "dns": {
            "type": "answer",
            "question": {"name": "x.example.net", "type": "TXT"},
            "answers": {"data": ["v=spf1", "powershell IEX(...)"]},
        },
    }
    assert [m.rule_id for m in loaded.match(event)] == [compiled.rule_id]
    event["dns"]["question"]["type"] = "A"  # type: ignore[index]
    assert loaded.match(event) == []


def correlation_samples() -> Iterator[tuple[str, str, list[dict[str, Any]]]]:
    for spec in corpus().correlations:
        if spec.source.parent != SCAN_DIR:
            continue
        data = json.loads(spec.source.with_name(spec.source.stem + ".samples.json").read_text())
        for key in ("match", "nomatch"):
            yield spec.corr_id, key, data[key]


@pytest.mark.parametrize(
    ("corr_id", "key", "events"),
    list(correlation_samples()),
    ids=lambda v: v if isinstance(v, str) else "events",
)
def test_correlation_samples(corr_id: str, key: str, events: list[dict[str, Any]]) -> None:
    """A correlation's samples: the "match" events, fed in order, fire it; "nomatch" don't."""
    assert events
    hits = fired(events)
    if key == "match":
        assert corr_id in hits
    else:
        assert corr_id not in hits


def test_every_scan_correlation_has_samples() -> None:
    assert {corr_id for corr_id, _, _ in correlation_samples()} == {VERTICAL, HORIZONTAL}


def test_the_base_rule_samples_fire_it_silently() -> None:
    ruleset = corpus()
    data = json.loads((SCAN_DIR / "port_scan.samples.json").read_text(encoding="utf-8"))
    base = ruleset.get(BASE_ID)
    for event in data["match"]:
        assert [r.rule_id for r in ruleset.fired(event)] == [BASE_ID]
        assert ruleset.match(event) == []
    for event in data["nomatch"]:
        assert base not in ruleset.fired(event)
        assert ruleset.match(event) == []


def test_the_base_rule_is_silent_and_feeds_only_the_correlations() -> None:
    ruleset = corpus()
    assert BASE_ID in ruleset.silent
    attempt = flow(0, SRV, 445)
    assert [r.rule_id for r in ruleset.fired(attempt)] == [BASE_ID]
    assert ruleset.match(attempt) == []  # no alert per refused connection
    assert {s.corr_id for s in ruleset.correlations} >= {VERTICAL, HORIZONTAL}


def test_a_vertical_scan_fires_once_per_burst_with_its_group() -> None:
    events = [flow(i * 0.1, SRV, 1 + i, "rejected" if i % 2 else "syn_only") for i in range(20)]
    (match,) = run(events)
    assert match.corr_id == VERTICAL
    assert dict(match.group) == {"source.ip": PC, "destination.ip": SRV}
    assert match.count == 15
    assert match.title == "Vertical Port Scan (Many Ports of One Host)"


def test_answered_connections_and_repeated_ports_are_not_a_scan() -> None:
    answered = [flow(i * 0.1, SRV, 1 + i, "established") for i in range(40)]
    answered += [flow(5 + i * 0.1, SRV, 1 + i, "closed") for i in range(40)]
    retries = [flow(10 + i * 0.5, SRV, 443 + i % 3) for i in range(60)]  # 3 ports, retried
    assert fired(answered + retries) == []


def test_vertical_window_edges() -> None:
    """15 distinct ports within 30 s fire; the same 15 spread over 31 s do not."""
    inside = [flow(i * (30 / 14), SRV, 100 + i) for i in range(15)]  # first..last = 30 s
    assert fired(inside) == [VERTICAL]
    outside = [flow(i * (31 / 14), SRV, 100 + i) for i in range(15)]
    assert fired(outside) == []
    fourteen = [flow(i * 0.1, SRV, 100 + i) for i in range(14)]
    assert fired(fourteen) == []


def test_a_horizontal_scan_and_its_window_edges() -> None:
    sweep = [flow(i * 2, f"10.20.0.{10 + i}", 22) for i in range(8)]
    (match,) = run(sweep)
    assert (match.corr_id, dict(match.group), match.count) == (HORIZONTAL, {"source.ip": PC}, 8)
    slow = [flow(i * (61 / 7), f"10.20.0.{10 + i}", 22) for i in range(8)]
    assert fired(slow) == []
    edge = [flow(i * (60 / 7), f"10.20.0.{10 + i}", 22) for i in range(8)]
    assert fired(edge) == [HORIZONTAL]


def test_scans_from_two_sources_are_counted_apart() -> None:
    half_a = [flow(i * 0.1, SRV, 1 + i, src="10.10.0.5") for i in range(10)]
    half_b = [flow(i * 0.1, SRV, 11 + i, src="10.10.0.6") for i in range(10)]
    assert fired(half_a + half_b) == []


def test_the_mynumber_rule_fires_on_attempts_from_the_internet_segment() -> None:
    ruleset = corpus()
    attempt = flow(0, "10.30.0.12", 445, src=PC, dst_zone="mynumber")
    assert [m.rule_id for m in ruleset.match(attempt)] == [MYNUMBER]
    answered = flow(0, "10.30.0.12", 22, "established", src=PC, dst_zone="mynumber")
    assert [m.rule_id for m in ruleset.match(answered)] == [MYNUMBER]
    lgwan = flow(0, "10.30.0.12", 445, src="10.20.0.7", src_zone="lgwan", dst_zone="mynumber")
    assert ruleset.match(lgwan) == []
