"""The lab network: real namespaces, real routing between segments, clean teardown.

Needs root (ip netns); fails loudly without it. Touches only skm-* namespaces it creates.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from agents.errors import ConfigError
from collector.lab.netns import (
    build,
    in_ns,
    lab_namespaces,
    ns_name,
    teardown,
    topology_namespaces,
)
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
        teardown(topology)
        assert lab_namespaces(topology_namespaces(topology)) == []
        assert host_links() == before, "the lab changed the machine's own network"


def ping(src: str, address: str) -> bool:
    result = subprocess.run(
        in_ns(ns_name(src), ["ping", "-c", "1", "-W", "2", address]),
        capture_output=True,
        check=False,
    )
    return result.returncode == 0


def test_segments_route_through_the_lab_router(lab: Topology) -> None:
    mine = {"skm-router", *(ns_name(h.name) for h in lab.hosts)}
    assert set(lab_namespaces(mine)) == mine
    assert ping("pc1", lab.host("pc2").address)  # same segment
    assert ping("pc1", lab.host("lgsrv").address)  # across the router
    assert ping("pc1", lab.host("web").address)  # "the internet", inside the lab
    assert ping("mnsrv", lab.host("dns").address)


def test_build_cleans_up_a_crashed_lab_first() -> None:
    """A crashed lab's namespace (with a process still inside) is removed by the next build;
    someone else's skm-* namespace is left alone."""
    assert os.geteuid() == 0
    topology = default_topology()
    foreign = "skm-labtest-foreign"
    subprocess.run(["ip", "netns", "add", "skm-pc1"], check=True)
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    sleeper = subprocess.Popen(in_ns("skm-pc1", ["sleep", "300"]))
    try:
        build(topology)
        assert sleeper.wait(10) != 0  # stopped by the teardown that build runs first
        assert foreign in lab_namespaces()
        assert ns_name("pc1") in lab_namespaces()  # the new one
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        teardown(topology)
        subprocess.run(["ip", "netns", "del", foreign], check=True)
    assert lab_namespaces(topology_namespaces(topology)) == []


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


def test_down_after_a_crash_stops_recorded_processes_and_only_lab_namespaces(
    tmp_path: Path,
) -> None:
    """A lab whose `up` died half-way: the state file records a process; `down` stops it
    (by pid, command checked), removes the namespaces, leaves a foreign process alone."""
    from collector.lab import launch, session
    from collector.lab.state import LabState, load_state

    assert os.geteuid() == 0
    topology = default_topology()
    state = LabState(data_dir=tmp_path / "lab")
    state.namespaces = build(topology)
    state.save()
    recorded = launch.start(state, "service:pc1", "skm-pc1", ["sleep", "300"])
    bystander = subprocess.Popen(["sleep", "300"])  # same command, not recorded, host netns
    try:
        removed = session.down(tmp_path / "lab")
        assert set(removed) == set(topology_namespaces(topology))
        assert not launch.is_running(recorded)
        assert bystander.poll() is None, "down killed a process it did not start"
        assert load_state(tmp_path / "lab") is None
    finally:
        bystander.kill()
        bystander.wait()
        teardown(topology)
