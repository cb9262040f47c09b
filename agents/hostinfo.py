"""Facts about this host for ``host.*``: name, addresses, OS. Read once at agent start."""

from __future__ import annotations

import ipaddress
import itertools
import platform
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class HostInfo:
    name: str
    hostname: str
    ips: tuple[str, ...] = ()
    os_name: str = ""
    os_family: str = ""
    kernel: str = ""

    def as_ecs(self) -> dict[str, object]:
        host: dict[str, object] = {"name": self.name, "hostname": self.hostname}
        if self.ips:
            host["ip"] = list(self.ips)
        os_fields = {"type": "linux"}
        if self.os_name:
            os_fields["name"] = self.os_name
        if self.os_family:
            os_fields["family"] = self.os_family
        if self.kernel:
            os_fields["kernel"] = self.kernel
        host["os"] = os_fields
        return host


def parse_os_release(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip()] = value.strip().strip('"')
    return values


def local_ips(proc_root: Path = Path("/proc")) -> tuple[str, ...]:
    """Non-loopback, non-link-local addresses from /proc/net/fib_trie and if_inet6."""
    found: list[str] = []
    try:
        lines = (proc_root / "net/fib_trie").read_text().splitlines()
    except OSError:
        lines = []
    for prev, line in itertools.pairwise(lines):
        if "/32 host LOCAL" in line:
            candidate = prev.split()[-1]
            if candidate not in found:
                found.append(candidate)
    try:
        for line in (proc_root / "net/if_inet6").read_text().splitlines():
            raw = line.split()[0]
            found.append(str(ipaddress.IPv6Address(bytes.fromhex(raw))))
    except (OSError, ValueError, IndexError):
        pass
    usable: list[str] = []
    for text in found:
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            continue
        if address.is_loopback or address.is_link_local or text in usable:
            continue
        usable.append(text)
    return tuple(usable)


def detect(name: str | None = None, proc_root: Path = Path("/proc")) -> HostInfo:
    hostname = socket.gethostname()
    try:
        release = parse_os_release(Path("/etc/os-release").read_text())
    except OSError:
        release = {}
    family = release.get("ID_LIKE", release.get("ID", "")).split(" ")[0]
    return HostInfo(
        name=name or hostname,
        hostname=hostname,
        ips=local_ips(proc_root),
        os_name=release.get("NAME", platform.system()),
        os_family=family,
        kernel=platform.release(),
    )
