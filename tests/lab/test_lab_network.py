"""The lab network: real namespaces, real routing between segments, clean teardown.

Needs root (ip netns); fails loudly without it. Touches only skm-* namespaces it creates.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from agents.errors import ConfigError
from collector.lab.netns import build, in_ns, lab_namespaces, ns_name, teardown
from collector.lab.topology import Topology, default_topology, parse_topology
from collector.zones import parse_zones


def host_links() -> str:
    """The machine's own links and routes (must be identical before and after)."""
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True)
    routes = subprocess.run(["ip", "route", "show"], capture_output=True, text=True, check=True)
    return (
        "\n".join(sorted(line.split(":", 2)[1] for line in links.stdout.splitlines()))
        + routes.stdout
    )


@pytest.fixture
def lab() -> Iterator[Topology]:
    assert os.geteuid() == 0, "the lab needs root for ip netns"
    before = host_links()
    topology = default_topology()
    build(topology)
    try:
        yield topology
    finally:
        teardown()
        assert lab_namespaces() == []
        assert host_links() == before, "the lab changed the machine's own network"


def ping(src: str, address: str) -> bool:
    result = subprocess.run(
        in_ns(ns_name(src), ["ping", "-c", "1", "-W", "2", address]),
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def test_segments_route_through_the_lab_router(lab: Topology) -> None:
    assert set(lab_namespaces()) == {"skm-router", *(ns_name(h.name) for h in lab.hosts)}
    assert ping("pc1", lab.host("pc2").address)  # same segment
    assert ping("pc1", lab.host("lgsrv").address)  # across the router
    assert ping("pc1", lab.host("web").address)  # "the internet", inside the lab
    assert ping("mnsrv", lab.host("dns").address)


def test_build_cleans_up_a_crashed_lab_first() -> None:
    assert os.geteuid() == 0
    subprocess.run(["ip", "netns", "add", "skm-leftover"], check=True)
    try:
        build(default_topology())
        assert "skm-leftover" not in lab_namespaces()
    finally:
        teardown()
    assert lab_namespaces() == []


def test_in_ns_refuses_foreign_namespaces() -> None:
    with pytest.raises(ConfigError, match="not a lab namespace"):
        in_ns("default", ["true"])


def test_zones_document_is_a_valid_zones_file() -> None:
    zones = parse_zones(default_topology().zones_document())
    assert zones.zone_of("10.10.0.11") == "internet"
    assert zones.zone_of("10.30.0.31") == "mynumber"
    assert zones.zone_of("203.0.113.7") == "external"
    assert zones.role_of("198.51.100.10") == "security_cloud_proxy"
    assert zones.role_of("10.99.0.53") == "dns_resolvers"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"segments": {}}, "exactly 'segments' and 'hosts'"),
        ({"segments": {"Bad-Name": {"cidr": "10.0.0.0/24"}}, "hosts": {}}, "segment name"),
        ({"segments": {"a": {"cidr": "10.0.0.1/24"}}, "hosts": {}}, "bad cidr"),
        (
            {
                "segments": {"a": {"cidr": "10.0.0.0/24"}},
                "hosts": {"h": {"segment": "a", "address": "10.0.1.5"}},
            },
            "not a free address",
        ),
        (
            {
                "segments": {"a": {"cidr": "10.0.0.0/24"}},
                "hosts": {"h": {"segment": "a", "address": "10.0.0.1"}},
            },
            "not a free address",
        ),
        (
            {
                "segments": {"a": {"cidr": "10.0.0.0/24"}},
                "hosts": {"h": {"segment": "b", "address": "10.0.0.5"}},
            },
            "no segment 'b'",
        ),
        (
            {
                "segments": {"a": {"cidr": "10.0.0.0/24"}},
                "hosts": {"h": {"segment": "a", "address": "10.0.0.5", "roles": ["boss"]}},
            },
            "unknown roles",
        ),
    ],
)
def test_bad_topologies_are_refused(raw: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_topology(raw)
