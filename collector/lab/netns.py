"""Build and remove the lab network with iproute2, inside ``skm-*`` namespaces only.

Every ``ip`` call names its namespace (``ip -n skm-…``) or creates one; nothing is ever added
to, or changed in, the namespace the command runs from. Teardown deletes the ``skm-*``
namespaces of the topology (the router and one per host, plus any extra names a state file
recorded) after stopping the processes inside them, so a crashed run is cleaned up by the next
``up`` or ``down``. Other ``skm-*`` namespaces (other tools' tests) are never touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from typing import Final

from agents.errors import ConfigError, PermissionDenied
from collector.lab.topology import Topology

PREFIX: Final = "skm-"
ROUTER: Final = f"{PREFIX}router"
log = logging.getLogger("sekimori.lab")


class LabError(ConfigError):
    """An ip/netns operation failed."""


def ns_name(host: str) -> str:
    return f"{PREFIX}{host}"


def ip(*args: str) -> str:
    """Run ``ip ARGS`` (no shell); raise LabError with its stderr on failure."""
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")
    return result.stdout


def in_ns(namespace: str, argv: Sequence[str]) -> list[str]:
    """The argv that runs ``argv`` inside ``namespace``."""
    if not namespace.startswith(PREFIX):
        raise LabError(f"refusing to run in namespace {namespace!r}: not a lab namespace")
    return ["ip", "netns", "exec", namespace, *argv]


def topology_namespaces(topology: Topology) -> list[str]:
    """The namespaces a lab of ``topology`` consists of: the router and one per host."""
    return [ROUTER, *(ns_name(host.name) for host in topology.hosts)]


def lab_namespaces(wanted: Iterable[str] | None = None) -> list[str]:
    """Existing ``skm-*`` namespaces (only those in ``wanted`` when given)."""
    allowed = None if wanted is None else set(wanted)
    names = []
    for line in ip("netns", "list").splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.startswith(PREFIX) and (allowed is None or name in allowed):
            names.append(name)
    return sorted(names)


def _require_root() -> None:
    if os.geteuid() != 0:
        raise PermissionDenied("the lab needs root for network namespaces", remedy="run as root")


def build(topology: Topology) -> list[str]:
    """Create the router, one bridge per segment and one namespace per host. Returns the
    namespaces created. Removes a previous (or crashed) lab first."""
    _require_root()
    teardown(topology)
    created: list[str] = []
    try:
        ip("netns", "add", ROUTER)
        created.append(ROUTER)
        ip("-n", ROUTER, "link", "set", "lo", "up")
        _run_checked(in_ns(ROUTER, ["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]))
        for segment in topology.segments:
            bridge = f"br-{segment.name}"
            ip("-n", ROUTER, "link", "add", bridge, "type", "bridge")
            prefix = segment.network.prefixlen
            ip("-n", ROUTER, "addr", "add", f"{segment.gateway}/{prefix}", "dev", bridge)
            ip("-n", ROUTER, "link", "set", bridge, "up")
        for host in topology.hosts:
            namespace = ns_name(host.name)
            segment = topology.segment(host.segment)
            ip("netns", "add", namespace)
            created.append(namespace)
            port = f"v-{host.name}"
            ip(
                "-n",
                ROUTER,
                "link",
                "add",
                port,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                namespace,
            )
            ip("-n", ROUTER, "link", "set", port, "master", f"br-{segment.name}", "up")
            ip("-n", namespace, "link", "set", "lo", "up")
            prefix = segment.network.prefixlen
            ip("-n", namespace, "addr", "add", f"{host.address}/{prefix}", "dev", "eth0")
            ip("-n", namespace, "link", "set", "eth0", "up")
            ip("-n", namespace, "route", "add", "default", "via", segment.gateway)
    except LabError:
        teardown(topology)
        raise
    return created


def _run_checked(argv: Sequence[str]) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {result.stderr.strip()}")


def pids_in(namespace: str) -> list[int]:
    return [int(p) for p in ip("netns", "pids", namespace).split()]


def teardown(topology: Topology, extra: Iterable[str] = (), grace: float = 5.0) -> list[str]:
    """Stop every process inside the lab's namespaces (SIGTERM, then SIGKILL), delete them.

    Only the topology's namespaces and ``extra`` (names a state file recorded) are removed."""
    _require_root()
    wanted = set(topology_namespaces(topology))
    wanted.update(name for name in extra if name.startswith(PREFIX))
    namespaces = lab_namespaces(wanted)
    victims = {pid for ns in namespaces for pid in pids_in(ns)}
    for pid in victims:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while victims and time.monotonic() < deadline:
        victims = {pid for pid in victims if _alive(pid)}
        time.sleep(0.05)
    for pid in victims:
        _signal(pid, signal.SIGKILL)
    for namespace in namespaces:
        ip("netns", "del", namespace)
    if namespaces:
        log.info("removed lab namespaces: %s", ", ".join(namespaces))
    return namespaces


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
