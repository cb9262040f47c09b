"""DNS message decoding for the network sensor (pure standard library, no scapy).

Wire data is hostile: every read is bounds-checked, compression pointers may only point
backwards and are followed at most ``MAX_POINTERS`` times (no loops), names are capped at the
RFC 1035 255 octets, and only the first ``MAX_ANSWERS`` answer records are decoded. Names come
out in presentation form, lower-case, without the trailing dot; a byte that is not a letter,
digit, ``-`` or ``_`` is escaped as ``\\DDD`` (RFC 1035 section 5.1), a literal dot or
backslash inside a label as ``\\.``/``\\\\``. A message whose header is readable but whose body is
not yields what was decoded so far with ``malformed=True``; shorter input raises
:class:`DnsDecodeError`.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass
from typing import Final

from agents.errors import InputError

HEADER: Final = struct.Struct("!HHHHHH")
MAX_ANSWERS: Final = 32
MAX_POINTERS: Final = 16
MAX_NAME_OCTETS: Final = 255
MAX_RDATA_TEXT: Final = 512

QTYPES: Final[dict[int, str]] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 10: "NULL", 12: "PTR", 13: "HINFO", 15: "MX",
    16: "TXT", 28: "AAAA", 33: "SRV", 35: "NAPTR", 39: "DNAME", 41: "OPT", 43: "DS",
    46: "RRSIG", 47: "NSEC", 48: "DNSKEY", 50: "NSEC3", 52: "TLSA", 64: "SVCB", 65: "HTTPS",
    99: "SPF", 251: "IXFR", 252: "AXFR", 255: "ANY", 257: "CAA",
}  # fmt: skip
RCODES: Final[dict[int, str]] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE",
}  # fmt: skip
_NAME_RDATA: Final = frozenset({2, 5, 12, 39})  # NS, CNAME, PTR, DNAME: one domain name
_PLAIN: Final = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789-_")


class DnsDecodeError(InputError):
    """Bytes that are not a DNS message (or a name that cannot be decoded)."""


@dataclass(frozen=True, kw_only=True)
class DnsParsed:
    id: int
    is_answer: bool
    rcode: str
    question_name: str | None
    question_type: str | None
    answers: tuple[str, ...]
    resolved_ips: tuple[str, ...]
    malformed: bool


def type_name(qtype: int) -> str:
    return QTYPES.get(qtype, f"TYPE{qtype}")


def _escape_label(label: bytes) -> str:
    out: list[str] = []
    for byte in label.lower():
        if byte in _PLAIN:
            out.append(chr(byte))
        elif byte in (0x2E, 0x5C):  # "." and "\" inside a label
            out.append("\\" + chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def read_name(data: bytes, offset: int) -> tuple[str, int]:
    """Decode the (possibly compressed) name at ``offset``: (text, offset after the name)."""
    labels: list[str] = []
    octets = 1
    end: int | None = None
    pointers = 0
    while True:
        if offset >= len(data):
            raise DnsDecodeError("name runs past the end of the message")
        length = data[offset]
        if length & 0xC0 == 0xC0:
            if offset + 1 >= len(data):
                raise DnsDecodeError("truncated compression pointer")
            target = ((length & 0x3F) << 8) | data[offset + 1]
            if end is None:
                end = offset + 2
            pointers += 1
            if pointers > MAX_POINTERS or target >= offset:
                raise DnsDecodeError("compression pointer loop or forward pointer")
            offset = target
            continue
        if length & 0xC0:
            raise DnsDecodeError(f"unsupported label type 0x{length:02x}")
        offset += 1
        if length == 0:
            break
        octets += length + 1
        if octets > MAX_NAME_OCTETS:
            raise DnsDecodeError("name longer than 255 octets")
        if offset + length > len(data):
            raise DnsDecodeError("label runs past the end of the message")
        labels.append(_escape_label(data[offset : offset + length]))
        offset += length
    return (".".join(labels) if labels else "."), (end if end is not None else offset)


def _character_strings(rdata: bytes) -> str:
    parts: list[str] = []
    index = 0
    while index < len(rdata):
        length = rdata[index]
        chunk = rdata[index + 1 : index + 1 + length]
        index += 1 + length
        text = "".join(
            chr(b) if 0x20 <= b < 0x7F and b not in (0x22, 0x5C) else f"\\{b:03d}" for b in chunk
        )
        parts.append(f'"{text}"')
    return " ".join(parts)


def rdata_text(data: bytes, rtype: int, start: int, length: int) -> str:
    """Presentation form of one record's rdata (names decompressed against ``data``)."""
    rdata = data[start : start + length]
    if rtype == 1 and length == 4:
        return socket.inet_ntop(socket.AF_INET, rdata)
    if rtype == 28 and length == 16:
        return socket.inet_ntop(socket.AF_INET6, rdata)
    if rtype in _NAME_RDATA:
        return read_name(data, start)[0]
    if rtype == 15 and length >= 3:  # MX
        return f"{struct.unpack_from('!H', rdata)[0]} {read_name(data, start + 2)[0]}"
    if rtype == 33 and length >= 7:  # SRV
        prio, weight, port = struct.unpack_from("!HHH", rdata)
        return f"{prio} {weight} {port} {read_name(data, start + 6)[0]}"
    if rtype == 16:
        return _character_strings(rdata)[:MAX_RDATA_TEXT]
    if rtype == 6:  # SOA
        mname, after = read_name(data, start)
        rname, after = read_name(data, after)
        _need(after + 20 <= start + length, "truncated SOA record")
        numbers = struct.unpack_from("!IIIII", data, after)
        return " ".join([mname, rname, *(str(n) for n in numbers)])
    return f"\\# {length} {rdata.hex()}"[:MAX_RDATA_TEXT]  # RFC 3597 unknown-type form


class _Body:
    """What was decoded of the question and answer sections (kept when decoding stops)."""

    def __init__(self) -> None:
        self.qname: str | None = None
        self.qtype: str | None = None
        self.answers: list[str] = []
        self.ips: list[str] = []

    def decode(self, data: bytes, qdcount: int, ancount: int) -> None:
        offset = HEADER.size
        for index in range(qdcount):
            name, offset = read_name(data, offset)
            _need(offset + 4 <= len(data), "truncated question")
            if index == 0:
                self.qname, self.qtype = name, type_name(struct.unpack_from("!H", data, offset)[0])
            offset += 4
        for _ in range(min(ancount, MAX_ANSWERS)):
            _owner, offset = read_name(data, offset)
            _need(offset + 10 <= len(data), "truncated resource record")
            rtype, _class, _ttl, rdlength = struct.unpack_from("!HHIH", data, offset)
            offset += 10
            _need(offset + rdlength <= len(data), "rdata runs past the end of the message")
            text = rdata_text(data, rtype, offset, rdlength)
            self.answers.append(text)
            if (rtype, rdlength) in ((1, 4), (28, 16)):
                self.ips.append(text)
            offset += rdlength


def _need(condition: bool, problem: str) -> None:
    if not condition:
        raise DnsDecodeError(problem)


def parse_dns(data: bytes) -> DnsParsed:
    """Decode a DNS message (UDP payload, or a TCP message without its length prefix)."""
    if len(data) < HEADER.size:
        raise DnsDecodeError(f"DNS message shorter than its header ({len(data)} bytes)")
    ident, flags, qdcount, ancount, _ns, _ar = HEADER.unpack_from(data)
    body = _Body()
    try:
        body.decode(data, qdcount, ancount)
        malformed = False
    except DnsDecodeError:
        malformed = True
    return DnsParsed(
        id=ident,
        is_answer=bool(flags & 0x8000),
        rcode=RCODES.get(flags & 0x0F, f"RCODE{flags & 0x0F}"),
        question_name=body.qname,
        question_type=body.qtype,
        answers=tuple(body.answers),
        resolved_ips=tuple(body.ips),
        malformed=malformed,
    )
