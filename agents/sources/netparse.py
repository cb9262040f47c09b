"""Parse ``/proc/net/{tcp,tcp6,udp,udp6}`` tables (pure functions, no I/O)."""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import Final, Literal

Transport = Literal["tcp", "udp"]
Family = Literal["ipv4", "ipv6"]

TCP_STATES: Final[dict[str, str]] = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
    "0C": "NEW_SYN_RECV",
}
TABLES: Final[tuple[tuple[str, Transport, Family], ...]] = (
    ("net/tcp", "tcp", "ipv4"),
    ("net/tcp6", "tcp", "ipv6"),
    ("net/udp", "udp", "ipv4"),
    ("net/udp6", "udp", "ipv6"),
)
WILDCARDS: Final = frozenset({"0.0.0.0", "::"})  # noqa: S104 - matched, not bound


@dataclass(frozen=True, slots=True)
class SocketEntry:
    transport: Transport
    family: Family
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    state: str
    uid: int
    inode: int

    @property
    def listening(self) -> bool:
        if self.transport == "tcp":
            return self.state == "LISTEN"
        return self.remote_port == 0 and self.local_port != 0  # an unconnected bound UDP socket

    @property
    def connected(self) -> bool:
        if self.transport == "tcp":
            return self.state not in ("LISTEN", "CLOSE") and self.remote_port != 0
        return self.remote_port != 0


def decode_address(text: str) -> tuple[str, int]:
    """``0100007F:1F90`` -> ("127.0.0.1", 8080). Words are in host byte order; IPv4-mapped
    IPv6 addresses are returned as IPv4."""
    host, port = text.split(":")
    if len(host) == 8:
        ip = socket.inet_ntop(socket.AF_INET, struct.pack("=I", int(host, 16)))
    else:
        words = [int(host[i : i + 8], 16) for i in range(0, 32, 8)]
        address = ipaddress.IPv6Address(struct.pack("=4I", *words))
        ip = str(address.ipv4_mapped) if address.ipv4_mapped else str(address)
    return ip, int(port, 16)


def parse_table(text: str, transport: Transport, family: Family) -> list[SocketEntry]:
    entries: list[SocketEntry] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10:
            continue
        try:
            local_ip, local_port = decode_address(fields[1])
            remote_ip, remote_port = decode_address(fields[2])
            entries.append(
                SocketEntry(
                    transport=transport,
                    family=family,
                    local_ip=local_ip,
                    local_port=local_port,
                    remote_ip=remote_ip,
                    remote_port=remote_port,
                    state=TCP_STATES.get(fields[3].upper(), fields[3]),
                    uid=int(fields[7]),
                    inode=int(fields[9]),
                )
            )
        except (ValueError, OSError):
            continue  # a malformed line must not hide the rest of the table
    return entries
