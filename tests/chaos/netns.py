"""Two network namespaces joined by a veth pair: ``agent`` (10.231.N.2) and ``collector``
(10.231.N.1). Everything the tests change (links, nftables) happens inside them, never on the
machine's own network; both are deleted afterwards."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


def sh(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=30)


@dataclass(frozen=True)
class Pair:
    agent: str
    collector: str
    agent_if: str
    agent_ip: str
    collector_ip: str

    def run_in(self, ns: str) -> tuple[str, ...]:
        return ("ip", "netns", "exec", ns)

    def link(self, up: bool) -> None:
        sh("ip", "-n", self.agent, "link", "set", self.agent_if, "up" if up else "down")


@contextmanager
def namespace_pair(tag: int) -> Iterator[Pair]:
    assert os.geteuid() == 0, "network-namespace tests need root (CI runs as root)"
    pair = Pair(
        f"skm-a{tag}-{os.getpid()}",
        f"skm-c{tag}-{os.getpid()}",
        f"va{tag}",
        f"10.231.{tag}.2",
        f"10.231.{tag}.1",
    )
    sh("ip", "netns", "add", pair.agent)
    try:
        sh("ip", "netns", "add", pair.collector)
        sh(
            "ip",
            "-n",
            pair.agent,
            "link",
            "add",
            pair.agent_if,
            "type",
            "veth",
            "peer",
            "name",
            f"vc{tag}",
            "netns",
            pair.collector,
        )
        for ns, dev, ip in (
            (pair.agent, pair.agent_if, pair.agent_ip),
            (pair.collector, f"vc{tag}", pair.collector_ip),
        ):
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        yield pair
    finally:
        sh("ip", "netns", "del", pair.agent, check=False)
        sh("ip", "netns", "del", pair.collector, check=False)
