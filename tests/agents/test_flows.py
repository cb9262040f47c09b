"""Pure parts of the network sensor: frame decoding, the flow table, DNS decoding.

Frames and DNS messages are built with scapy (an independent encoder), so the decoders are
checked against a second implementation, not against themselves. Time is injected.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop
from scapy.layers.l2 import Dot1Q, Ether

from agents.sources.base import DnsMessage, Flow
from agents.sources.dnsparse import MAX_ANSWERS, DnsDecodeError, parse_dns, read_name
from agents.sources.flows import ACK, FIN, RST, SYN, FlowTable, Packet, decode_frame
from agents.sources.netsensor import SensorPipeline

A, B = "10.250.0.1", "10.250.0.2"


def frame(layers: Any) -> bytes:
    return bytes(Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / layers)


def tcp(src: str, dst: str, sport: int, dport: int, flags: int, t: float, size: int = 40) -> Packet:
    return Packet(t, "ipv4", 6, src, dst, sport, dport, size, flags, b"")


def udp(src: str, dst: str, sport: int, dport: int, t: float, size: int = 28) -> Packet:
    return Packet(t, "ipv4", 17, src, dst, sport, dport, size, 0, b"")


def table(**kwargs: Any) -> FlowTable:
    options: dict[str, Any] = {"interface": "s0", "active_timeout": 60.0, "idle_timeout": 30.0}
    options.update(kwargs)
    return FlowTable(**options)


# -- frame decoding ------------------------------------------------------------------------
def test_decode_tcp_ipv4_matches_scapy() -> None:
    raw = frame(IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="S") / (b"x" * 10))
    packet = decode_frame(raw, 5.0)
    assert packet == Packet(5.0, "ipv4", 6, A, B, 40000, 80, 50, SYN, b"")


def test_decode_udp_dns_payload_ignores_ethernet_padding() -> None:
    query = bytes(DNS(id=7, qd=DNSQR(qname="a.b")))
    raw = frame(IP(src=A, dst=B) / UDP(sport=5353, dport=53) / query) + b"\x00" * 20
    packet = decode_frame(raw, 1.0)
    assert packet is not None
    assert (packet.proto, packet.sport, packet.dport, packet.payload) == (17, 5353, 53, query)
    assert packet.length == 20 + 8 + len(query)


def test_decode_vlan_ipv6_extension_headers_and_icmp() -> None:
    raw = frame(
        Dot1Q(vlan=5) / IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrHopByHop() / UDP(dport=9)
    )
    packet = decode_frame(raw, 0.0)
    assert packet is not None
    assert (packet.family, packet.proto, packet.src, packet.dst) == (
        "ipv6",
        17,
        "fd00::1",
        "fd00::2",
    )
    assert (packet.dport, packet.length) == (9, 40 + 8 + 8)
    icmp = decode_frame(frame(IP(src=A, dst=B) / ICMP()), 0.0)
    assert icmp is not None
    assert (icmp.proto, icmp.sport, icmp.dport, icmp.length) == (1, None, None, 28)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\x00" * 13,
        frame(IP(src=A, dst=B, frag=10) / UDP()),  # later fragment: no ports
        frame(IPv6(src="fd00::1", dst="fd00::2") / IPv6ExtHdrFragment(offset=3) / UDP()),
        frame(IP(src=A, dst=B) / TCP())[:40],  # TCP header cut short
        bytes(Ether(type=0x0806) / (b"\x00" * 28)),  # ARP
    ],
)
def test_undecodable_frames_give_none(raw: bytes) -> None:
    assert decode_frame(raw, 0.0) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_decode_never_raises_on_garbage(tail: bytes) -> None:
    for ethertype in (b"\x08\x00", b"\x86\xdd", b"\x81\x00"):
        decode_frame(b"\x00" * 12 + ethertype + tail, 0.0)


# -- flow table ----------------------------------------------------------------------------
def test_tcp_handshake_data_and_close_with_grace() -> None:
    flows = table()
    for packet in (
        tcp(A, B, 40000, 80, SYN, 1.0),
        tcp(B, A, 80, 40000, SYN | ACK, 1.1),
        tcp(A, B, 40000, 80, ACK, 1.2),
        tcp(A, B, 40000, 80, ACK, 1.3, size=140),
        tcp(B, A, 80, 40000, ACK | FIN, 1.4, size=240),
        tcp(A, B, 40000, 80, ACK | FIN, 1.5),
    ):
        assert flows.add(packet) == []
    assert flows.expire(2.0) == []  # closed, but within the grace
    assert flows.add(tcp(B, A, 80, 40000, ACK, 2.1)) == []  # the final ACK is counted
    (flow,) = flows.expire(2.6)
    assert flow == Flow(
        interface="s0", transport="tcp", family="ipv4", source_ip=A, source_port=40000,
        destination_ip=B, destination_port=80, state="closed", start=1.0, end=2.1,
        source_bytes=40 + 40 + 140 + 40, source_packets=4, destination_bytes=40 + 240 + 40,
        destination_packets=3, final=True,
    )  # fmt: skip
    assert len(flows) == 0


@pytest.mark.parametrize(
    ("sequence", "state"),
    [
        ([(A, SYN), (A, SYN)], "syn_only"),
        ([(A, SYN), (B, RST | ACK)], "rejected"),
        ([(A, SYN), (B, SYN | ACK), (A, RST)], "reset"),  # half-open scan of an open port
        ([(A, SYN), (B, SYN | ACK), (A, ACK), (B, RST)], "reset"),
        ([(A, ACK), (B, ACK)], "established"),  # picked up mid-stream
        ([(A, SYN), (B, SYN | ACK), (A, ACK), (A, FIN | ACK)], "established"),  # half-closed
    ],
)
def test_tcp_states(sequence: list[tuple[str, int]], state: str) -> None:
    flows = table()
    for step, (sender, flags) in enumerate(sequence):
        src, dst, sport, dport = (A, B, 40000, 22) if sender == A else (B, A, 22, 40000)
        flows.add(tcp(src, dst, sport, dport, flags, 1.0 + step / 10))
    (flow,) = flows.flush()
    assert (flow.state, flow.source_ip, flow.destination_port) == (state, A, 22)


def test_syn_ack_first_makes_the_receiver_the_initiator() -> None:
    flows = table()
    flows.add(tcp(B, A, 443, 50000, SYN | ACK, 1.0))
    (flow,) = flows.flush()
    assert (flow.source_ip, flow.source_port, flow.destination_port) == (A, 50000, 443)
    assert (flow.state, flow.source_packets, flow.destination_packets) == ("established", 0, 1)


def test_new_syn_on_a_closed_tuple_ends_the_old_flow() -> None:
    flows = table()
    flows.add(tcp(A, B, 40000, 80, SYN, 1.0))
    flows.add(tcp(B, A, 80, 40000, RST | ACK, 1.1))
    (old,) = flows.add(tcp(A, B, 40000, 80, SYN, 1.2))
    assert (old.state, old.final, old.end) == ("rejected", True, 1.1)
    (new,) = flows.flush()
    assert (new.state, new.start) == ("syn_only", 1.2)


def test_idle_timeout_and_active_updates() -> None:
    flows = table(active_timeout=10.0, idle_timeout=5.0)
    flows.add(udp(A, B, 5000, 123, 0.0))
    flows.add(udp(B, A, 123, 5000, 0.5))
    flows.add(tcp(A, B, 40001, 80, SYN, 0.0))
    for second in range(1, 10):  # the UDP flow stays active, the SYN goes idle
        flows.add(udp(A, B, 5000, 123, float(second)))
    ended = flows.expire(9.5)
    assert [(f.transport, f.state, f.final) for f in ended] == [("tcp", "syn_only", True)]
    (update,) = flows.expire(10.5)  # due at 10.0; the table is scanned at most once a second
    assert (update.final, update.state, update.source_packets, update.destination_packets) == (
        False, "udp", 10, 1,
    )  # fmt: skip
    assert flows.expire(12.0) == []  # next update only one active_timeout later
    (end,) = flows.expire(14.0)  # last packet at 9.0 + idle 5.0
    assert (end.final, end.source_packets, end.start, end.end) == (True, 10, 0.0, 9.0)


def test_full_table_evicts_least_recently_active_and_counts() -> None:
    flows = table(max_flows=3)
    for port in (1, 2, 3):
        flows.add(udp(A, B, port, 53, float(port)))
    flows.add(udp(A, B, 1, 53, 4.0))  # port 1 becomes the most recent
    (evicted,) = flows.add(udp(A, B, 4, 53, 5.0))
    assert (evicted.source_port, evicted.final, evicted.evicted) == (2, True, True)
    assert (flows.evictions, len(flows)) == (1, 3)
    assert sorted(f.source_port or 0 for f in flows.flush()) == [1, 3, 4]


def test_icmp_flow_has_no_ports() -> None:
    flows = table()
    flows.add(Packet(1.0, "ipv4", 1, A, B, None, None, 84, 0, b""))
    flows.add(Packet(1.1, "ipv4", 1, B, A, None, None, 84, 0, b""))
    (flow,) = flows.flush()
    assert (flow.transport, flow.state, flow.source_port, flow.destination_port) == (
        "icmp", "icmp", None, None,
    )  # fmt: skip
    assert (flow.source_bytes, flow.destination_bytes) == (84, 84)


# -- DNS -----------------------------------------------------------------------------------
def test_dns_answer_decoded_like_scapy_encoded_it() -> None:
    message = DNS(
        id=4242, qr=1, rcode=0,
        qd=DNSQR(qname="WWW.Example.COM.", qtype="A"),
        an=[
            DNSRR(rrname="www.example.com", type="CNAME", rdata="Edge.example.net"),
            DNSRR(rrname="edge.example.net", type="A", rdata="192.0.2.7"),
            DNSRR(rrname="edge.example.net", type="AAAA", rdata="2001:db8::7"),
            DNSRR(rrname="edge.example.net", type="TXT", rdata=[b'v=1 "x"', b"two"]),
        ],
    )  # fmt: skip
    parsed = parse_dns(bytes(message))
    assert (parsed.id, parsed.is_answer, parsed.rcode) == (4242, True, "NOERROR")
    assert (parsed.question_name, parsed.question_type) == ("www.example.com", "A")
    assert parsed.answers == (
        "edge.example.net", "192.0.2.7", "2001:db8::7", '"v=1 \\034x\\034" "two"',
    )  # fmt: skip
    assert parsed.resolved_ips == ("192.0.2.7", "2001:db8::7")
    assert not parsed.malformed


def test_dns_query_nxdomain_and_unknown_type() -> None:
    query = parse_dns(bytes(DNS(id=1, rd=1, qd=DNSQR(qname="x.test", qtype=4321))))
    assert (query.is_answer, query.question_type, query.answers) == (False, "TYPE4321", ())
    answer = parse_dns(bytes(DNS(id=1, qr=1, rcode=3, qd=DNSQR(qname="x.test"))))
    assert (answer.rcode, answer.question_name) == ("NXDOMAIN", "x.test")


def test_hostile_label_bytes_are_escaped() -> None:
    name = b"\x07A.b\\\xff\x00c\x03com\x00"
    header = struct.pack("!HHHHHH", 9, 0, 1, 0, 0, 0)
    parsed = parse_dns(header + name + b"\x00\x10\x00\x01")
    assert parsed.question_name == "a\\.b\\\\\\255\\000c.com"
    assert parsed.question_type == "TXT"


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xc0\x0c", "loop"),  # a pointer to itself
        (b"\x01a\xc0\x0e", "loop"),  # a pointer forward
        (b"\x05ab", "past the end"),
        (b"\x41" + b"a" * 70, "label type"),
        (b"\x3f" + b"a" * 63 + b"\x3f" + b"b" * 63 + b"\x3f" + b"c" * 63 + b"\x3f" + b"d" * 63
         + b"\x00", "255"),
    ],
)  # fmt: skip
def test_hostile_names_raise_decode_error(body: bytes, problem: str) -> None:
    data = struct.pack("!HHHHHH", 1, 0, 1, 0, 0, 0) + body
    with pytest.raises(DnsDecodeError, match=problem):
        read_name(data, 12)
    parsed = parse_dns(data)
    assert parsed.malformed and parsed.question_name is None


def test_truncated_message_keeps_what_was_decoded() -> None:
    full = bytes(
        DNS(id=3, qr=1, qd=DNSQR(qname="a.test"), an=DNSRR(rrname="a.test", rdata="1.2.3.4"))
    )
    parsed = parse_dns(full[:-3])
    assert (parsed.question_name, parsed.answers, parsed.malformed) == ("a.test", (), True)
    with pytest.raises(DnsDecodeError):
        parse_dns(full[:11])


def test_answer_count_is_capped() -> None:
    answers = b"".join(
        b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x01\x00\x04" + bytes([10, 0, 0, i % 250])
        for i in range(40)
    )
    data = struct.pack("!HHHHHH", 5, 0x8180, 1, 40, 0, 0) + b"\x01a\x00\x00\x01\x00\x01" + answers
    parsed = parse_dns(data)
    assert len(parsed.answers) == len(parsed.resolved_ips) == MAX_ANSWERS


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=12, max_size=300))
def test_dns_parser_only_raises_its_own_error(data: bytes) -> None:
    parsed = parse_dns(data)  # the header is always readable: never raises
    assert len(parsed.answers) <= MAX_ANSWERS


# -- the pipeline (decode -> flows -> DNS), as the live sensor and the bench run it ----------
def test_pipeline_emits_dns_records_in_both_directions_and_a_flow() -> None:
    pipeline = SensorPipeline("s0", active_timeout=60, idle_timeout=30, max_flows=10)
    query = DNS(id=77, rd=1, qd=DNSQR(qname="Host.Lab.", qtype="AAAA"))
    answer = DNS(
        id=77, qr=1, qd=query.qd, an=DNSRR(rrname="host.lab", type="AAAA", rdata="fd00::9")
    )
    out = pipeline.feed(frame(IP(src=A, dst=B) / UDP(sport=41000, dport=53) / query), 1.0)
    out += pipeline.feed(frame(IP(src=B, dst=A) / UDP(sport=53, dport=41000) / answer), 1.1)
    tcp_query = bytes(query)
    out += pipeline.feed(
        frame(IP(src=A, dst=B) / TCP(sport=41001, dport=53, flags="PA")
              / (struct.pack("!H", len(tcp_query)) + tcp_query)), 1.2,
    )  # fmt: skip
    messages = [r for r in out if isinstance(r, DnsMessage)]
    assert [(m.is_answer, m.transport, m.source_ip, m.source_port) for m in messages] == [
        (False, "udp", A, 41000), (True, "udp", B, 53), (False, "tcp", A, 41001),
    ]  # fmt: skip
    assert messages[1].resolved_ips == ("fd00::9",)
    assert messages[1].response_code == "NOERROR" and messages[0].response_code is None
    assert {(f.transport, f.source_port) for f in pipeline.table.flush()} == {
        ("udp", 41000), ("tcp", 41001),
    }  # fmt: skip
