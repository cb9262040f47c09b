"""zones.yaml parsing and enrichment."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.errors import ConfigError
from collector.zones import example_zones_path, load_zones, parse_zones
from tests.conftest import build_event


def test_example_zones_enrich_events() -> None:
    zones = load_zones(example_zones_path())
    event = build_event(
        "network_connection",
        host_ip="10.10.0.5",
        destination__ip="10.30.1.9",
        destination__port=445,
    )
    zones.enrich(event)
    assert event["sekimori"]["zone"] == {
        "host": "internet",
        "source": "internet",
        "destination": "mynumber",
    }
    proxy = build_event("network_connection", destination__ip="198.51.100.10")
    zones.enrich(proxy)
    assert proxy["sekimori"]["zone"]["destination"] == "external"
    assert proxy["sekimori"]["role"]["destination"] == "security_cloud_proxy"


@pytest.mark.parametrize(
    ("ip", "zone"),
    [
        ("8.8.8.8", "external"),
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("192.168.1.1", "unmapped"),
        ("::ffff:10.20.0.1", "lgwan"),
        ("nonsense", "unmapped"),
    ],
)
def test_zone_of(ip: str, zone: str) -> None:
    assert load_zones(example_zones_path()).zone_of(ip) == zone


def test_longest_prefix_role() -> None:
    zones = parse_zones(
        {
            "zones": {"internet": {"cidrs": ["10.0.0.0/8"]}},
            "roles": {"dns_resolvers": ["10.0.0.53"], "collector": ["10.0.0.0/24"]},
        }
    )
    assert zones.role_of("10.0.0.53") == "dns_resolvers"
    assert zones.role_of("10.0.0.9") == "collector"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "expected a mapping"),
        ({"zones": {}}, "non-empty mapping"),
        ({"zones": {"a": {"cidrs": ["10.0.0.0/33"]}}}, "not a valid CIDR"),
        ({"zones": {"a": {"cidrs": ["10.0.0.1/8"]}}}, "not a valid CIDR"),
        ({"zones": {"a": {"cidrs": ["10.0.0.0/8"]}, "b": {"cidrs": ["10.1.0.0/16"]}}}, "overlap"),
        ({"zones": {"external": {"cidrs": ["10.0.0.0/8"]}}}, "reserved"),
        ({"zones": {"a": {"cidrs": ["10.0.0.0/8"], "colour": "red"}}}, "unknown keys"),
        (
            {"zones": {"a": {"cidrs": ["10.0.0.0/8"]}}, "roles": {"printer": ["10.0.0.1"]}},
            "unknown role",
        ),
        ({"zones": {"a": {"cidrs": ["10.0.0.0/8"]}}, "extra": 1}, "unknown top-level"),
        ({"version": 2, "zones": {"a": {"cidrs": ["10.0.0.0/8"]}}}, "unsupported version"),
    ],
)
def test_invalid_zones_are_refused(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_zones(raw)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "zones.yaml"
    path.write_text("zones:\n  internet:\n    cidrs: [10.0.0.0/8\n")
    with pytest.raises(ConfigError) as info:
        load_zones(path)
    assert info.value.source == str(path)
    assert info.value.line is not None
    assert "invalid YAML" in str(info.value)
