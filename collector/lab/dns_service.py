"""The lab's designated resolver and NTP-like responder (stdlib sockets, one thread each).

The resolver answers A queries for the lab's own names from a fixed table and NXDOMAIN for
everything else (it is authoritative for the lab, it never recurses). The NTP-like responder
echoes a 48-byte reply with the current time to any datagram on UDP 123. Both are harmless:
they bind one lab address inside a lab namespace.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Mapping
from typing import Final

QTYPE_A: Final = 1
FLAG_QR: Final = 0x8000
FLAG_AA: Final = 0x0400
FLAG_RD: Final = 0x0100
RCODE_NXDOMAIN: Final = 3
RCODE_FORMERR: Final = 1
NTP_EPOCH_OFFSET: Final = 2_208_988_800  # seconds from 1900-01-01 to 1970-01-01


def read_qname(packet: bytes, offset: int) -> tuple[str, int]:
    """The dotted name at ``offset`` (no compression in questions) and the offset after it."""
    labels: list[str] = []
    while True:
        if offset >= len(packet):
            raise ValueError("truncated name")
        length = packet[offset]
        offset += 1
        if length == 0:
            return ".".join(labels).lower(), offset
        if length > 63 or offset + length > len(packet):
            raise ValueError("bad label")
        labels.append(packet[offset : offset + length].decode("ascii", "replace"))
        offset += length


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.strip(".").split("."):
        raw = label.encode("ascii")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


def build_query(name: str, query_id: int, qtype: int = QTYPE_A) -> bytes:
    header = struct.pack("!HHHHHH", query_id, FLAG_RD, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, 1)


def answer(packet: bytes, records: Mapping[str, str]) -> bytes | None:
    """The response to one query packet (None for garbage too short to answer)."""
    if len(packet) < 12:
        return None
    query_id, flags, qdcount = struct.unpack("!HHH", packet[:6])
    if flags & FLAG_QR or qdcount != 1:
        return struct.pack("!HHHHHH", query_id, FLAG_QR | RCODE_FORMERR, 0, 0, 0, 0)
    try:
        name, end = read_qname(packet, 12)
        qtype, _qclass = struct.unpack("!HH", packet[end : end + 4])
    except (ValueError, struct.error):
        return struct.pack("!HHHHHH", query_id, FLAG_QR | RCODE_FORMERR, 0, 0, 0, 0)
    question = packet[12 : end + 4]
    address = records.get(name)
    rd = flags & FLAG_RD
    if address is None:
        head = struct.pack("!HHHHHH", query_id, FLAG_QR | FLAG_AA | rd | RCODE_NXDOMAIN, 1, 0, 0, 0)
        return head + question
    if qtype != QTYPE_A:  # the name exists, no data of that type
        return struct.pack("!HHHHHH", query_id, FLAG_QR | FLAG_AA | rd, 1, 0, 0, 0) + question
    head = struct.pack("!HHHHHH", query_id, FLAG_QR | FLAG_AA | rd, 1, 1, 0, 0)
    record = b"\xc0\x0c" + struct.pack("!HHIH", QTYPE_A, 1, 60, 4) + socket.inet_aton(address)
    return head + question + record


def serve_dns(bind: str, records: Mapping[str, str], stop: threading.Event, port: int = 53) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, port))
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                packet, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            reply = answer(packet, records)
            if reply is not None:
                sock.sendto(reply, peer)


def ntp_reply(request: bytes, now: float | None = None) -> bytes:
    """A server-mode (4), stratum-2 reply that echoes the client's transmit timestamp."""
    now = time.time() if now is None else now
    seconds = int(now) + NTP_EPOCH_OFFSET
    fraction = int((now % 1) * 2**32)
    origin = request[40:48] if len(request) >= 48 else b"\x00" * 8
    stamp = struct.pack("!II", seconds, fraction)
    header = struct.pack("!BBbb", (4 << 3) | 4, 2, 6, -20) + b"\x00" * 8 + b"LAB\x00"
    return header + stamp + origin + stamp + stamp


def serve_ntp(bind: str, stop: threading.Event, port: int = 123) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((bind, port))
        sock.settimeout(0.5)
        while not stop.is_set():
            try:
                packet, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            sock.sendto(ntp_reply(packet), peer)
