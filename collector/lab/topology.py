"""Lab topology: segments (one bridge each on the lab router) and the hosts in them.

The default topology is a small β′ municipality: two staff PCs in the internet-connected
segment, an LGWAN server, a My Number server, an infrastructure segment (collector, DNS,
sanitiser), the prefecture's security cloud (proxy, resolver) and an outside host.
A topology file (YAML, same shape as ``default_topology()``) can replace it.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from agents.errors import ConfigError
from collector.zones import RESERVED_ZONES, ROLES

NAME_RE: Final = re.compile(r"^[a-z][a-z0-9]{0,9}$")  # fits "skm-" + name in IFNAMSIZ budgets
EXTERNAL_SEGMENTS: Final = frozenset({"cloud", "outside"})  # not zones: the outside world


@dataclass(frozen=True, slots=True, kw_only=True)
class Host:
    name: str
    segment: str
    address: str  # host address inside the segment's network
    roles: tuple[str, ...] = ()
    agent: bool = True  # runs an enrolled agent


@dataclass(frozen=True, slots=True, kw_only=True)
class Segment:
    name: str
    cidr: str  # the router takes the first host address as gateway
    description: str = ""

    @property
    def network(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.cidr)

    @property
    def gateway(self) -> str:
        return str(next(self.network.hosts()))


@dataclass(frozen=True, slots=True, kw_only=True)
class Topology:
    segments: tuple[Segment, ...]
    hosts: tuple[Host, ...]

    def segment(self, name: str) -> Segment:
        for segment in self.segments:
            if segment.name == name:
                return segment
        raise ConfigError(f"no segment {name!r}")

    def host(self, name: str) -> Host:
        for host in self.hosts:
            if host.name == name:
                return host
        raise ConfigError(f"no host {name!r}", remedy=f"hosts: {[h.name for h in self.hosts]}")

    def zones_document(self) -> dict[str, Any]:
        """The zones.yaml the collector uses for this lab (segments → zones, roles)."""
        zones = {
            s.name: {"description": s.description, "cidrs": [s.cidr]}
            for s in self.segments
            if s.name not in EXTERNAL_SEGMENTS
        }
        roles: dict[str, list[str]] = {}
        for host in self.hosts:
            for role in host.roles:
                roles.setdefault(role, []).append(host.address)
        return {"version": 1, "zones": zones, "roles": roles}


DEFAULT: Final[Mapping[str, Any]] = {
    "segments": {
        "internet": {"cidr": "10.10.0.0/24", "description": "インターネット接続系 (staff PCs)"},
        "lgwan": {"cidr": "10.20.0.0/24", "description": "LGWAN接続系"},
        "mynumber": {"cidr": "10.30.0.0/24", "description": "マイナンバー利用事務系"},
        "infra": {"cidr": "10.99.0.0/24", "description": "collector, DNS, sanitiser"},
        "cloud": {"cidr": "198.51.100.0/24", "description": "自治体情報セキュリティクラウド"},
        "outside": {"cidr": "203.0.113.0/24", "description": "the internet"},
    },
    "hosts": {
        "pc1": {"segment": "internet", "address": "10.10.0.11"},
        "pc2": {"segment": "internet", "address": "10.10.0.12"},
        "lgsrv": {"segment": "lgwan", "address": "10.20.0.21"},
        "mnsrv": {"segment": "mynumber", "address": "10.30.0.31"},
        "coll": {
            "segment": "infra",
            "address": "10.99.0.10",
            "roles": ["collector"],
            "agent": False,
        },
        "dns": {"segment": "infra", "address": "10.99.0.53", "roles": ["dns_resolvers"]},
        "sani": {"segment": "infra", "address": "10.99.0.20", "roles": ["sanitizer_gw"]},
        "proxy": {
            "segment": "cloud",
            "address": "198.51.100.10",
            "roles": ["security_cloud_proxy"],
            "agent": False,
        },
        "web": {"segment": "outside", "address": "203.0.113.7", "agent": False},
    },
}


def parse_topology(raw: Any, source: str = "<topology>") -> Topology:
    if not isinstance(raw, Mapping) or set(raw) != {"segments", "hosts"}:
        raise ConfigError("a topology has exactly 'segments' and 'hosts'", source=source)
    segments = []
    for name, body in dict(raw["segments"]).items():
        _check_name(name, "segment", source)
        if name in RESERVED_ZONES:
            raise ConfigError(f"segment name {name!r} is reserved", source=source)
        if not isinstance(body, Mapping) or set(body) - {"cidr", "description"}:
            raise ConfigError(f"segment {name!r}: expected 'cidr' and 'description'", source=source)
        try:
            network = ipaddress.IPv4Network(body["cidr"])
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"segment {name!r}: bad cidr ({exc})", source=source) from exc
        segments.append(
            Segment(name=name, cidr=str(network), description=str(body.get("description", "")))
        )
    topology = Topology(segments=tuple(segments), hosts=())
    hosts = []
    for name, body in dict(raw["hosts"]).items():
        _check_name(name, "host", source)
        if not isinstance(body, Mapping) or set(body) - {"segment", "address", "roles", "agent"}:
            raise ConfigError(f"host {name!r}: unknown keys", source=source)
        segment = topology.segment(str(body.get("segment")))
        address = ipaddress.IPv4Address(str(body.get("address")))
        if address not in segment.network or str(address) == segment.gateway:
            raise ConfigError(
                f"host {name!r}: {address} is not a free address of {segment.cidr}", source=source
            )
        roles = tuple(body.get("roles", ()))
        unknown = set(roles) - ROLES
        if unknown:
            raise ConfigError(f"host {name!r}: unknown roles {sorted(unknown)}", source=source)
        hosts.append(
            Host(
                name=name,
                segment=segment.name,
                address=str(address),
                roles=roles,
                agent=bool(body.get("agent", True)),
            )
        )
    if len({h.address for h in hosts}) != len(hosts):
        raise ConfigError("two hosts share an address", source=source)
    return Topology(segments=tuple(segments), hosts=tuple(hosts))


def _check_name(name: Any, what: str, source: str) -> None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ConfigError(
            f"{what} name {name!r}: use 1-10 lower-case letters/digits, starting with a letter",
            source=source,
        )


def default_topology() -> Topology:
    return parse_topology(DEFAULT, "<default topology>")


def load_topology(path: Path) -> Topology:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read topology: {exc}", source=str(path)) from exc
    return parse_topology(raw, str(path))
