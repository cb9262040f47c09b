"""Frame decoding and the flow table of the network sensor (pure standard library).

:func:`decode_frame` reads Ethernet (with 802.1Q/802.1ad tags), IPv4/IPv6 (skipping IPv6
extension headers) and the TCP/UDP ports and flags; non-first fragments and truncated headers
are not decodable (``None``). :class:`FlowTable` aggregates packets into bidirectional flows:

* bounded: at most ``max_flows``; a new flow in a full table evicts the least recently active
  one, which is reported at once as a ``flow_end`` marked evicted and counted in ``evictions``;
* TCP state: ``syn_only`` (SYN, no reply) -> ``established`` (SYN-ACK seen, or the initiator
  ACKs) -> ``closed`` (FIN both ways) or ``reset`` (RST); ``rejected`` when the responder
  answers the SYN with RST. A closed/reset/rejected flow ends ``close_grace`` seconds after it
  closed (so the final ACK is counted); a new SYN on its 5-tuple ends it immediately;
* timeouts (the caller passes ``now``, so tests inject a clock): ``flow_end`` after
  ``idle_timeout`` without packets, ``flow_update`` every ``active_timeout`` while active.
"""

from __future__ import annotations

import socket
from collections import OrderedDict
from typing import Final, NamedTuple

from agents.sources.base import Flow, FlowState

FIN: Final = 0x01
SYN: Final = 0x02
RST: Final = 0x04
ACK: Final = 0x10
DNS_PORT: Final = 53
TRANSPORTS: Final[dict[int, str]] = {
    1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp",
    51: "ah", 58: "icmp", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp",
}  # fmt: skip
ACTIVE_SCAN_INTERVAL: Final = 1.0  # seconds between scans of the table for flow_update
_VLAN: Final = (0x8100, 0x88A8)
_V6_EXTENSIONS: Final = (0, 43, 60)  # hop-by-hop, routing, destination options
_TERMINAL: Final = ("closed", "reset", "rejected")


class Packet(NamedTuple):
    timestamp: float
    family: str  # "ipv4" | "ipv6"
    proto: int
    src: str
    dst: str
    sport: int | None
    dport: int | None
    length: int  # IP packet length (header + payload) from the IP header
    flags: int  # TCP flags, 0 otherwise
    payload: bytes  # transport payload, only for port 53 (DNS); b"" otherwise


def _ipv6_walk(frame: bytes, start: int, nxt: int) -> tuple[int, int] | None:
    """Skip extension headers: (transport protocol, its offset), None for a later fragment."""
    for _ in range(8):
        if nxt in _V6_EXTENSIONS:
            if start + 2 > len(frame):
                return None
            nxt, start = frame[start], start + (frame[start + 1] + 1) * 8
        elif nxt == 44:  # fragment header
            if start + 8 > len(frame) or (int.from_bytes(frame[start + 2 : start + 4]) >> 3):
                return None
            nxt, start = frame[start], start + 8
        else:
            return nxt, start
    return None


def decode_frame(frame: bytes, timestamp: float) -> Packet | None:
    """Decode one Ethernet frame; None when it is not a decodable IP packet."""
    if len(frame) < 14:
        return None
    ethertype, off = (frame[12] << 8) | frame[13], 14
    while ethertype in _VLAN and len(frame) >= off + 4:
        ethertype, off = (frame[off + 2] << 8) | frame[off + 3], off + 4
    if ethertype == 0x0800:
        if len(frame) < off + 20 or frame[off] >> 4 != 4:
            return None
        if ((frame[off + 6] << 8) | frame[off + 7]) & 0x1FFF:
            return None  # non-first fragment: no transport header
        length = ((frame[off + 2] << 8) | frame[off + 3]) or len(frame) - off
        proto, family = frame[off + 9], "ipv4"
        src = socket.inet_ntop(socket.AF_INET, frame[off + 12 : off + 16])
        dst = socket.inet_ntop(socket.AF_INET, frame[off + 16 : off + 20])
        l4 = off + (frame[off] & 0x0F) * 4
    elif ethertype == 0x86DD:
        if len(frame) < off + 40:
            return None
        length = (((frame[off + 4] << 8) | frame[off + 5]) or len(frame) - off - 40) + 40
        src = socket.inet_ntop(socket.AF_INET6, frame[off + 8 : off + 24])
        dst = socket.inet_ntop(socket.AF_INET6, frame[off + 24 : off + 40])
        walked = _ipv6_walk(frame, off + 40, frame[off + 6])
        if walked is None:
            return None
        (proto, l4), family = walked, "ipv6"
    else:
        return None
    end = min(len(frame), off + length)
    if proto == 6:
        if l4 + 20 > end:
            return None
        sport, dport = (frame[l4] << 8) | frame[l4 + 1], (frame[l4 + 2] << 8) | frame[l4 + 3]
        dns = DNS_PORT in (sport, dport)
        payload = frame[l4 + (frame[l4 + 12] >> 4) * 4 : end] if dns else b""
        return Packet(timestamp, family, 6, src, dst, sport, dport, length, frame[l4 + 13], payload)
    if proto == 17:
        if l4 + 8 > end:
            return None
        sport, dport = (frame[l4] << 8) | frame[l4 + 1], (frame[l4 + 2] << 8) | frame[l4 + 3]
        dns = DNS_PORT in (sport, dport)
        return Packet(
            timestamp, family, 17, src, dst, sport, dport, length, 0,
            frame[l4 + 8 : end] if dns else b"",
        )  # fmt: skip
    return Packet(timestamp, family, proto, src, dst, None, None, length, 0, b"")


class _Entry:
    """Mutable per-flow state (one per table slot)."""

    __slots__ = (
        "closed_at", "dst", "dst_bytes", "dst_packets", "family", "fin_dst", "fin_src", "first",
        "last", "next_update", "proto", "src", "src_bytes", "src_packets", "state",
    )  # fmt: skip

    def __init__(self, packet: Packet, initiator_is_sender: bool, state: FlowState) -> None:
        sender, receiver = (packet.src, packet.sport), (packet.dst, packet.dport)
        self.src, self.dst = (sender, receiver) if initiator_is_sender else (receiver, sender)
        self.proto, self.family = packet.proto, packet.family
        self.state: FlowState = state
        self.first = self.last = packet.timestamp
        self.next_update = 0.0
        self.src_bytes = self.src_packets = self.dst_bytes = self.dst_packets = 0
        self.fin_src = self.fin_dst = False
        self.closed_at: float | None = None


FlowKey = tuple[int, tuple[str, int], tuple[str, int]]


class FlowTable:
    """Bidirectional flows of one interface; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        interface: str,
        active_timeout: float = 60.0,
        idle_timeout: float = 30.0,
        max_flows: int = 50_000,
        close_grace: float = 1.0,
    ) -> None:
        self.interface = interface
        self.active_timeout = active_timeout
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        self.close_grace = close_grace
        self.evictions = 0
        self._flows: OrderedDict[FlowKey, _Entry] = OrderedDict()  # least recent first
        self._closing: dict[FlowKey, _Entry] = {}
        self._next_scan = 0.0

    def __len__(self) -> int:
        return len(self._flows)

    def add(self, packet: Packet) -> list[Flow]:
        """Account one packet; returns flows ended early (evicted, or replaced by a new SYN)."""
        a, b = (packet.src, packet.sport or 0), (packet.dst, packet.dport or 0)
        key: FlowKey = (packet.proto, a, b) if a <= b else (packet.proto, b, a)
        ended: list[Flow] = []
        entry = self._flows.get(key)
        syn_only = packet.proto == 6 and packet.flags & (SYN | ACK) == SYN
        if entry is not None and syn_only and entry.state in _TERMINAL:
            ended.append(self._end(key, entry))  # port reuse: a new connection
            entry = None
        if entry is None:
            if len(self._flows) >= self.max_flows:
                old_key, old = next(iter(self._flows.items()))
                ended.append(self._end(old_key, old, evicted=True))
                self.evictions += 1
            entry = self._new(packet)
            entry.next_update = packet.timestamp + self.active_timeout
            self._flows[key] = entry
        else:
            self._flows.move_to_end(key)
        forward = (packet.src, packet.sport) == entry.src
        if forward:
            entry.src_bytes += packet.length
            entry.src_packets += 1
        else:
            entry.dst_bytes += packet.length
            entry.dst_packets += 1
        entry.last = max(entry.last, packet.timestamp)
        if packet.proto == 6:
            self._tcp(key, entry, packet.flags, forward, packet.timestamp)
        return ended

    @staticmethod
    def _new(packet: Packet) -> _Entry:
        if packet.proto != 6:
            state: FlowState = "udp" if packet.proto == 17 else "other"
            if packet.proto in (1, 58):
                state = "icmp"
            return _Entry(packet, True, state)
        if packet.flags & (SYN | ACK) == SYN | ACK:  # missed the SYN: the receiver initiated
            return _Entry(packet, False, "established")
        if packet.flags & SYN:
            return _Entry(packet, True, "syn_only")
        return _Entry(packet, True, "established")  # mid-stream pick-up

    def _tcp(self, key: FlowKey, entry: _Entry, flags: int, forward: bool, now: float) -> None:
        state = entry.state
        if flags & RST:
            if state in ("syn_only", "established"):
                entry.state = "rejected" if state == "syn_only" and not forward else "reset"
                entry.closed_at = now
                self._closing[key] = entry
            return
        if state == "syn_only" and ((not forward and flags & SYN) or (forward and flags & ACK)):
            entry.state = state = "established"
        if flags & FIN and state == "established":
            if forward:
                entry.fin_src = True
            else:
                entry.fin_dst = True
            if entry.fin_src and entry.fin_dst:
                entry.state = "closed"
                entry.closed_at = now
                self._closing[key] = entry

    def _end(self, key: FlowKey, entry: _Entry, *, evicted: bool = False) -> Flow:
        del self._flows[key]
        self._closing.pop(key, None)
        return self._record(entry, final=True, evicted=evicted)

    def _record(self, entry: _Entry, *, final: bool, evicted: bool = False) -> Flow:
        proto = entry.proto
        return Flow(
            interface=self.interface,
            transport=TRANSPORTS.get(proto, f"proto-{proto}"),
            family="ipv6" if entry.family == "ipv6" else "ipv4",
            source_ip=entry.src[0],
            source_port=entry.src[1],
            destination_ip=entry.dst[0],
            destination_port=entry.dst[1],
            state=entry.state,
            start=entry.first,
            end=entry.last,
            source_bytes=entry.src_bytes,
            source_packets=entry.src_packets,
            destination_bytes=entry.dst_bytes,
            destination_packets=entry.dst_packets,
            final=final,
            evicted=evicted,
        )

    def expire(self, now: float) -> list[Flow]:
        """Flows due at ``now``: closed ones past the grace, idle ones, and active updates."""
        out = [
            self._end(key, entry)
            for key, entry in list(self._closing.items())
            if entry.closed_at is not None and entry.closed_at + self.close_grace <= now
        ]
        while self._flows:
            key, entry = next(iter(self._flows.items()))
            if entry.last + self.idle_timeout > now:
                break
            out.append(self._end(key, entry))
        if now < self._next_scan:
            return out
        self._next_scan = now + ACTIVE_SCAN_INTERVAL
        for entry in self._flows.values():
            if entry.next_update <= now:
                out.append(self._record(entry, final=False))
                entry.next_update = now + self.active_timeout
        return out

    def flush(self) -> list[Flow]:
        """Every flow still in the table, as ``flow_update`` (the sensor is stopping)."""
        out = [self._record(entry, final=False) for entry in self._flows.values()]
        self._flows.clear()
        self._closing.clear()
        return out
