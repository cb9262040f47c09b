"""β′ zones: which segment an address belongs to, and which infrastructure role it plays.

``zones.yaml`` (see docs/zones.md) names the segments by CIDR and the infrastructure roles by
address. Enrichment adds ``sekimori.zone.{host,source,destination}`` and
``sekimori.role.{source,destination}`` so segment-policy rules become single-event matches.
Addresses in no zone are ``loopback`` (127/8, ::1), ``unmapped`` when site-local (RFC 1918,
CGNAT, link-local, ULA, unspecified, multicast: space nobody described, worth a look) and
``external`` otherwise (the outside world, documentation ranges included).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, Final

import yaml

from agents.errors import ConfigError
from agents.schema import get_path, set_path

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

RESERVED_ZONES: Final = frozenset({"external", "loopback", "unmapped"})
ROLES: Final = frozenset(
    {
        "security_cloud_proxy",
        "sanitizer_gw",
        "vdi_gw",
        "dns_resolvers",
        "mail_relay",
        "ntp",
        "collector",
    }
)
_SIDES: Final = (
    ("source.ip", "sekimori.zone.source", "sekimori.role.source"),
    ("destination.ip", "sekimori.zone.destination", "sekimori.role.destination"),
)
# Address space that is site-local by definition: never "external" even when no zone names it.
_LOCAL_NETS: Final = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "169.254.0.0/16",
        "fc00::/7",
        "fe80::/10",
    )
)
_TOP_KEYS: Final = frozenset({"version", "zones", "roles"})
_ZONE_KEYS: Final = frozenset({"cidrs", "description"})


# Per-address lookups memoised per ZoneMap (a fleet talks to few addresses); bounded.
LOOKUP_CACHE_SIZE: Final = 65536


@dataclass(frozen=True, slots=True)
class ZoneMap:
    """Longest-prefix lookup of zones and roles (entries sorted most specific first).

    Lookups are memoised per address string in a bounded LRU (``LOOKUP_CACHE_SIZE``): the map
    is immutable, so a cached answer is always the answer."""

    zones: tuple[tuple[IPNetwork, str], ...]
    roles: tuple[tuple[IPNetwork, str], ...]
    descriptions: Mapping[str, str]
    _lookup: Callable[[str], tuple[str, str | None]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lookup = lru_cache(maxsize=LOOKUP_CACHE_SIZE)(partial(_classify, self.zones, self.roles))
        object.__setattr__(self, "_lookup", lookup)

    def zone_of(self, ip: str) -> str:
        return self._lookup(ip)[0]

    def role_of(self, ip: str) -> str | None:
        return self._lookup(ip)[1]

    def enrich(self, event: dict[str, Any], leaves: dict[str, Any] | None = None) -> None:
        """Add zone and role fields in place (only for addresses the event carries).

        ``leaves``: the event's dotted leaf paths -> values (``ParsedBatch.leaves``), read
        instead of walking the event and kept in step with it (the new fields go to both)."""
        if leaves is not None:
            self._enrich_leaves(event, leaves)
            return
        lookup = self._lookup
        host_ips = get_path(event, "host.ip") or []
        host_zone = self._host_zone(host_ips)
        if host_zone is not None:
            set_path(event, "sekimori.zone.host", host_zone)
        for side in ("source", "destination"):
            ip = get_path(event, f"{side}.ip")
            if isinstance(ip, str):
                zone, role = lookup(ip)
                set_path(event, f"sekimori.zone.{side}", zone)
                if role is not None:
                    set_path(event, f"sekimori.role.{side}", role)

    def _host_zone(self, host_ips: list[str]) -> str | None:
        """The first named zone of the host's addresses, else the first address's zone."""
        lookup = self._lookup
        for ip in host_ips:
            zone = lookup(ip)[0]
            if zone not in RESERVED_ZONES:
                return zone
        return lookup(host_ips[0])[0] if host_ips else None

    def _enrich_leaves(self, event: dict[str, Any], leaves: dict[str, Any]) -> None:
        added: dict[str, str] = {}
        host_zone = self._host_zone(leaves.get("host.ip") or [])
        if host_zone is not None:
            added["sekimori.zone.host"] = host_zone
        for side, zone_path, role_path in _SIDES:
            ip = leaves.get(side)
            if type(ip) is str:
                zone, role = self._lookup(ip)
                added[zone_path] = zone
                if role is not None:
                    added[role_path] = role
        for path, value in added.items():
            set_path(event, path, value)
        leaves.update(added)


def _classify(
    zones: tuple[tuple[IPNetwork, str], ...], roles: tuple[tuple[IPNetwork, str], ...], ip: str
) -> tuple[str, str | None]:
    """(zone, role or None) of one address string, uncached."""
    addr = _addr(ip)
    if addr is None:
        return "unmapped", None
    role = None
    for net, name in roles:
        if addr.version == net.version and addr in net:
            role = name
            break
    for net, name in zones:
        if addr.version == net.version and addr in net:
            return name, role
    if addr.is_loopback:
        return "loopback", role
    if addr.is_unspecified or addr.is_multicast or any(addr in n for n in _LOCAL_NETS):
        return "unmapped", role
    return "external", role


def _addr(ip: str) -> IPAddress | None:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _network(text: Any, where: str, source: str) -> IPNetwork:
    if not isinstance(text, str):
        raise ConfigError(f"{where}: expected a CIDR string, got {text!r}", source=source)
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        raise ConfigError(
            f"{where}: {text!r} is not a valid CIDR ({exc})",
            source=source,
            remedy="write networks as 10.1.0.0/16 with the host bits zero",
        ) from exc


def _parse_zones(
    raw: Mapping[str, Any], source: str
) -> tuple[list[tuple[IPNetwork, str]], dict[str, str]]:
    entries: list[tuple[IPNetwork, str]] = []
    descriptions: dict[str, str] = {}
    for name, body in raw.items():
        where = f"zones.{name}"
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"zone name {name!r} must be an identifier", source=source)
        if name in RESERVED_ZONES:
            raise ConfigError(f"zone name {name!r} is reserved", source=source)
        if not isinstance(body, Mapping):
            raise ConfigError(f"{where}: expected a mapping with 'cidrs'", source=source)
        unknown = set(body) - _ZONE_KEYS
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}", source=source)
        cidrs = body.get("cidrs")
        if not isinstance(cidrs, list) or not cidrs:
            raise ConfigError(f"{where}.cidrs: expected a non-empty list", source=source)
        descriptions[name] = str(body.get("description", ""))
        entries.extend((_network(c, f"{where}.cidrs", source), name) for c in cidrs)
    for i, (net_a, zone_a) in enumerate(entries):
        for net_b, zone_b in entries[i + 1 :]:
            if zone_a != zone_b and net_a.version == net_b.version and net_a.overlaps(net_b):
                raise ConfigError(
                    f"zones {zone_a!r} ({net_a}) and {zone_b!r} ({net_b}) overlap",
                    source=source,
                    remedy="an address must belong to exactly one segment",
                )
    return entries, descriptions


def _parse_roles(raw: Mapping[str, Any], source: str) -> list[tuple[IPNetwork, str]]:
    entries: list[tuple[IPNetwork, str]] = []
    for name, addresses in raw.items():
        if name not in ROLES:
            raise ConfigError(
                f"unknown role {name!r}",
                source=source,
                remedy=f"roles are: {', '.join(sorted(ROLES))}",
            )
        if not isinstance(addresses, list):
            raise ConfigError(f"roles.{name}: expected a list of addresses", source=source)
        for item in addresses:
            text = str(item)
            if "/" not in text:  # a bare address is a host route
                text += "/128" if ":" in text else "/32"
            entries.append((_network(text, f"roles.{name}", source), name))
    return entries


def parse_zones(raw: Any, source: str = "zones.yaml") -> ZoneMap:
    if not isinstance(raw, Mapping):
        raise ConfigError("expected a mapping with 'zones' (and optional 'roles')", source=source)
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"unknown top-level keys {sorted(unknown)}", source=source)
    if raw.get("version", 1) != 1:
        raise ConfigError(f"unsupported version {raw.get('version')!r} (expected 1)", source=source)
    zones_raw = raw.get("zones")
    if not isinstance(zones_raw, Mapping) or not zones_raw:
        raise ConfigError("'zones' must be a non-empty mapping", source=source)
    roles_raw = raw.get("roles") or {}
    if not isinstance(roles_raw, Mapping):
        raise ConfigError("'roles' must be a mapping of role -> addresses", source=source)
    zones, descriptions = _parse_zones(zones_raw, source)
    roles = _parse_roles(roles_raw, source)
    by_prefix = lambda item: -item[0].prefixlen  # noqa: E731
    return ZoneMap(
        zones=tuple(sorted(zones, key=by_prefix)),
        roles=tuple(sorted(roles, key=by_prefix)),
        descriptions=descriptions,
    )


def load_zones(path: Path) -> ZoneMap:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read zones file: {exc}", source=str(path)) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {exc}", source=str(path), line=line) from exc
    return parse_zones(raw, str(path))


def example_zones_path() -> Path:
    return Path(__file__).parent / "data" / "zones.example.yaml"
