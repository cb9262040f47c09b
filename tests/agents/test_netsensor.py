"""The network sensor on real traffic between two network namespaces.

Needs root (``ip netns``, AF_PACKET) and libpcap; fails loudly without them. The fixture builds
``skm-ns1-<pid>-a`` <-veth-> ``skm-ns1-<pid>-b`` (10.250.0.1/24 and .2/24, IPv6 off so no
background chatter) and removes them afterwards. Sockets are opened inside a namespace by a
thread that entered it with setns(2) (a socket keeps its namespace), so the sensor, the
servers and the clients all run in this process. 10.250.0.3 has a static neighbour entry and
no host: SYNs to it are sent on the wire and never answered.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import queue
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from agents.errors import ConfigError, PermissionDenied
from agents.events import EventBuilder
from agents.schema import seal, set_path
from agents.sources.base import DnsMessage, Flow, Record, SourceGap
from agents.sources.netsensor import NetSensorSource
from tests.agents.agent_testkit import check_contract

T = TypeVar("T")
REPO = Path(__file__).resolve().parents[2]
CLONE_NEWNET = 0x40000000
NS_A, NS_B = f"skm-ns1-{os.getpid()}-a", f"skm-ns1-{os.getpid()}-b"
IP_A, IP_B, IP_DARK = "10.250.0.1", "10.250.0.2", "10.250.0.3"
LIBC = ctypes.CDLL(None, use_errno=True)
WAIT = 30.0  # upper bound on waiting for records (a hang guard, not a timing assertion)


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


def in_ns(ns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` on a fresh thread that entered network namespace ``ns``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            enter_ns(ns)
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            box["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


def enter_ns(ns: str) -> None:
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if LIBC.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


def ns_socket(ns: str, kind: int) -> socket.socket:
    return in_ns(ns, lambda: socket.socket(socket.AF_INET, kind))


@pytest.fixture(scope="module")
def veth() -> Iterator[None]:
    assert os.geteuid() == 0, "the sensor tests need root (ip netns, AF_PACKET)"
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        sh("ip", "netns", "add", ns)
    try:
        for ns in (NS_A, NS_B):
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1")  # fmt: skip
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", NS_A, "link", "add", "s0", "type", "veth",
           "peer", "name", "s1", "netns", NS_B)  # fmt: skip
        sh("ip", "-n", NS_A, "addr", "add", f"{IP_A}/24", "dev", "s0")
        sh("ip", "-n", NS_B, "addr", "add", f"{IP_B}/24", "dev", "s1")
        sh("ip", "-n", NS_A, "link", "set", "s0", "up")
        sh("ip", "-n", NS_B, "link", "set", "s1", "up")
        sh("ip", "-n", NS_A, "neigh", "add", IP_DARK, "lladdr", "02:00:00:00:00:99", "dev", "s0",
           "nud", "permanent")  # fmt: skip
        yield
    finally:
        for ns in (NS_A, NS_B):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


@dataclass
class Running:
    source: NetSensorSource
    stop: threading.Event
    out: queue.Queue[Record]
    gate: threading.Event  # cleared: the consumer blocks after each record (a stalled agent)
    thread: threading.Thread
    seen: list[Record] = field(default_factory=list)

    def until(self, done: Callable[[list[Record]], bool]) -> list[Record]:
        while not done(self.seen):
            try:
                self.seen.append(self.out.get(timeout=WAIT))
            except queue.Empty:
                pytest.fail(f"sensor records never satisfied the test; got {self.seen}")
        return self.seen

    def finish(self) -> list[Record]:
        self.gate.set()
        self.stop.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        while not self.out.empty():
            self.seen.append(self.out.get())
        return self.seen


@pytest.fixture
def sensor(veth: None) -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(**options: Any) -> Running:
        source = NetSensorSource(["s0"], idle_timeout=options.pop("idle", 2.0))
        for key, value in options.items():
            setattr(source, key, value)
        in_ns(NS_A, source.check_compatible)
        ready = threading.Event()
        running = Running(source, threading.Event(), queue.Queue(), threading.Event(), None)  # type: ignore[arg-type]
        running.gate.set()

        def pump() -> None:
            enter_ns(NS_A)
            records = source.records(running.stop)
            for index, record in enumerate(records):
                running.out.put(record)
                if index == 0:
                    ready.set()
                running.gate.wait()
            ready.set()

        running.thread = threading.Thread(target=pump, daemon=True)
        running.thread.start()
        # A DNS probe (an immediate record) proves the capture is live before the test starts.
        probe = ns_socket(NS_A, socket.SOCK_DGRAM)
        with probe:
            for _ in range(int(WAIT / 0.05)):
                if ready.wait(0.05):
                    break
                probe.sendto(bytes(DNS(id=7, qd=DNSQR(qname="probe.test"))), (IP_DARK, 53))
            else:
                pytest.fail("the sensor never saw the DNS probe")
        started.append(running)
        return running

    yield start
    for running in started:
        running.finish()


def flows(records: list[Record], **match: Any) -> list[Flow]:
    return [
        r for r in records
        if isinstance(r, Flow) and r.final and all(getattr(r, k) == v for k, v in match.items())
    ]  # fmt: skip


def ip_frames(ns: str) -> tuple[socket.socket, Callable[[], list[bytes]]]:
    """An independent oracle: a plain AF_PACKET socket (no filter) read after the fact."""
    sock = in_ns(ns, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)))
    sock.bind(("s0", 3))
    sock.setblocking(False)

    def drain() -> list[bytes]:
        frames = []
        while True:
            try:
                frames.append(sock.recv(65535))
            except BlockingIOError:
                return frames

    return sock, drain


def oracle_counts(frames: list[bytes], client_port: int, server_port: int) -> tuple[int, ...]:
    """(client->server bytes, packets, server->client bytes, packets), dissected by scapy."""
    up = down = (0, 0)
    for raw in frames:
        packet = Ether(raw)
        if TCP not in packet:
            continue
        ports = (packet[TCP].sport, packet[TCP].dport)
        if ports == (client_port, server_port):
            up = (up[0] + packet[IP].len, up[1] + 1)
        elif ports == (server_port, client_port):
            down = (down[0] + packet[IP].len, down[1] + 1)
    return (*up, *down)


def test_tcp_accepted_refused_and_unanswered(sensor: Callable[..., Running]) -> None:
    running = sensor()
    oracle, drain = ip_frames(NS_A)
    server = ns_socket(NS_B, socket.SOCK_STREAM)
    server.bind((IP_B, 8080))
    server.listen()

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            assert conn.recv(100) == b"q" * 100
            conn.sendall(b"r" * 200)
            conn.recv(10)  # the client's close

    thread = threading.Thread(target=serve)
    thread.start()
    client = ns_socket(NS_A, socket.SOCK_STREAM)
    with client:
        client.connect((IP_B, 8080))
        accepted_port = client.getsockname()[1]
        client.sendall(b"q" * 100)
        received = b""
        while len(received) < 200:
            received += client.recv(200)
    thread.join()
    server.close()
    refused = ns_socket(NS_A, socket.SOCK_STREAM)
    with refused, pytest.raises(ConnectionRefusedError):
        refused.connect((IP_B, 8081))
    dark = ns_socket(NS_A, socket.SOCK_STREAM)
    dark.settimeout(1.5)  # the SYN and one retransmission
    with dark, pytest.raises(TimeoutError):
        dark.connect((IP_DARK, 8082))

    records = running.until(lambda seen: len(flows(seen, transport="tcp")) >= 3)
    with oracle:
        frames = drain()
    by_port = {f.destination_port: f for f in flows(records, transport="tcp")}
    assert set(by_port) == {8080, 8081, 8082}
    ok, rejected, unanswered = by_port[8080], by_port[8081], by_port[8082]
    assert (ok.state, ok.source_ip, ok.source_port, ok.destination_ip) == (
        "closed", IP_A, accepted_port, IP_B,
    )  # fmt: skip
    expected = oracle_counts(frames, accepted_port, 8080)
    counted = (ok.source_bytes, ok.source_packets, ok.destination_bytes, ok.destination_packets)
    assert counted == expected
    assert ok.source_bytes >= 3 * 52 + 100 and ok.destination_bytes >= 2 * 52 + 200
    assert (rejected.state, rejected.source_packets, rejected.destination_packets) == (
        "rejected",
        1,
        1,
    )
    assert (unanswered.state, unanswered.destination_ip) == ("syn_only", IP_DARK)
    assert unanswered.source_packets >= 2 and unanswered.destination_packets == 0
    assert all(f.interface == "s0" and f.start <= f.end for f in by_port.values())


def test_udp_and_icmp_flows_are_exact(
    sensor: Callable[..., Running], builder: EventBuilder
) -> None:
    running = sensor()
    echo = ns_socket(NS_B, socket.SOCK_DGRAM)
    echo.bind((IP_B, 9999))
    client = ns_socket(NS_A, socket.SOCK_DGRAM)
    with echo, client:
        client.bind((IP_A, 45000))
        for size in (10, 20, 30):
            client.sendto(b"u" * size, (IP_B, 9999))
            data, peer = echo.recvfrom(100)
            echo.sendto(data * 2, peer)
            client.recvfrom(100)
    sh("ip", "netns", "exec", NS_A, "ping", "-c", "2", "-i", "0.2", "-q", IP_B)

    records = running.until(lambda seen: bool(flows(seen, transport="udp", source_port=45000))
                            and bool(flows(seen, transport="icmp")))  # fmt: skip
    (udp,) = flows(records, transport="udp", source_port=45000)
    assert (udp.source_ip, udp.destination_ip, udp.destination_port, udp.state) == (
        IP_A, IP_B, 9999, "udp",
    )  # fmt: skip
    assert (udp.source_packets, udp.source_bytes) == (3, 3 * 28 + 60)
    assert (udp.destination_packets, udp.destination_bytes) == (3, 3 * 28 + 120)
    (icmp,) = flows(records, transport="icmp")
    assert (icmp.source_ip, icmp.destination_ip, icmp.source_port, icmp.state) == (
        IP_A, IP_B, None, "icmp",
    )  # fmt: skip
    assert (icmp.source_packets, icmp.source_bytes, icmp.destination_packets) == (2, 168, 2)
    for number, flow in enumerate((udp, icmp), start=1):
        event = builder.build(flow)
        set_path(event, "sekimori.seq", number)
        check_contract(seal(event))
    event = builder.build(udp)
    assert (event["event"]["action"], event["sekimori"]["kind"]) == ("flow_end", "network_flow")
    assert event["network"] == {
        "transport": "udp",
        "type": "ipv4",
        "bytes": 144 + 204,
        "packets": 6,
    }
    assert event["source"] == {"ip": IP_A, "port": 45000, "bytes": 144, "packets": 3}
    assert event["@timestamp"] == event["event"]["end"]
    assert event["event"]["duration"] == round((udp.end - udp.start) * 1e9) > 0
    assert "port" not in builder.build(icmp)["destination"]


def dns_answer(query: bytes) -> bytes:
    """www.example.com -> two A records (encoded by scapy); anything else -> NXDOMAIN (the
    query echoed with QR and rcode 3 set, so a hostile name comes back byte for byte)."""
    request = DNS(query)
    name = request.qd[0].qname
    if name.lower() == b"www.example.com.":
        return bytes(DNS(id=request.id, qr=1, qd=request.qd, an=[
            DNSRR(rrname=name, type="A", rdata="10.250.0.9"),
            DNSRR(rrname=name, type="A", rdata="10.250.0.10"),
        ]))  # fmt: skip
    return query[:2] + struct.pack("!H", 0x8183) + query[4:]


def test_dns_queries_and_answers_over_udp_and_tcp(
    sensor: Callable[..., Running], builder: EventBuilder
) -> None:
    running = sensor()
    resolver = ns_socket(NS_B, socket.SOCK_DGRAM)
    resolver.bind((IP_B, 53))
    tcp_resolver = ns_socket(NS_B, socket.SOCK_STREAM)
    tcp_resolver.bind((IP_B, 53))
    tcp_resolver.listen()
    client = ns_socket(NS_A, socket.SOCK_DGRAM)
    hostile = (
        struct.pack("!HHHHHH", 0x0BAD, 0x0100, 1, 0, 0, 0)
        + b"\x05Ev\x00l.\x03com\x00\x00\x10\x00\x01"
    )
    with resolver, tcp_resolver, client:
        for query in (bytes(DNS(id=0x1234, rd=1, qd=DNSQR(qname="WWW.Example.COM"))), hostile):
            client.sendto(query, (IP_B, 53))
            data, peer = resolver.recvfrom(512)
            resolver.sendto(dns_answer(data), peer)
            client.recvfrom(512)
        tcp_client = ns_socket(NS_A, socket.SOCK_STREAM)
        with tcp_client:
            tcp_client.connect((IP_B, 53))
            query = bytes(DNS(id=0x4321, qd=DNSQR(qname="www.example.com", qtype="A")))
            tcp_client.sendall(struct.pack("!H", len(query)) + query)
            conn, _ = tcp_resolver.accept()
            with conn:
                length = struct.unpack("!H", conn.recv(2))[0]
                answer = dns_answer(conn.recv(length))
                conn.sendall(struct.pack("!H", len(answer)) + answer)
                tcp_client.recv(1024)

    records = running.until(
        lambda seen: (
            sum(isinstance(r, DnsMessage) and r.destination_ip != IP_DARK for r in seen) >= 6
        )
    )
    messages = [r for r in records if isinstance(r, DnsMessage) and r.destination_ip != IP_DARK]
    summary = [(m.transport, m.is_answer, m.id, m.question_name, m.question_type, m.response_code)
               for m in messages]  # fmt: skip
    assert summary == [
        ("udp", False, 0x1234, "www.example.com", "A", None),
        ("udp", True, 0x1234, "www.example.com", "A", "NOERROR"),
        ("udp", False, 0x0BAD, "ev\\000l\\..com", "TXT", None),
        ("udp", True, 0x0BAD, "ev\\000l\\..com", "TXT", "NXDOMAIN"),
        ("tcp", False, 0x4321, "www.example.com", "A", None),
        ("tcp", True, 0x4321, "www.example.com", "A", "NOERROR"),
    ]
    query_msg, answer_msg = messages[0], messages[1]
    assert (query_msg.source_ip, query_msg.destination_ip, query_msg.destination_port) == (
        IP_A,
        IP_B,
        53,
    )
    assert (answer_msg.source_ip, answer_msg.source_port, answer_msg.destination_ip) == (
        IP_B,
        53,
        IP_A,
    )
    assert answer_msg.answers == answer_msg.resolved_ips == ("10.250.0.9", "10.250.0.10")
    for number, message in enumerate(messages, start=1):
        event = builder.build(message)
        set_path(event, "sekimori.seq", number)
        check_contract(seal(event))
    answer_event = builder.build(answer_msg)
    assert answer_event["event"]["action"] == "dns_answer"
    assert answer_event["dns"]["resolved_ip"] == ["10.250.0.9", "10.250.0.10"]
    assert answer_event["sekimori"]["sensor"]["interface"] == "s0"


def test_kernel_drops_of_a_stalled_agent_are_reported_exactly(
    sensor: Callable[..., Running], builder: EventBuilder
) -> None:
    running = sensor(rcvbuf=128 * 1024, stats_interval=0.2, idle=30.0)
    running.until(lambda seen: len(seen) >= 1)
    running.gate.clear()  # the agent's queue is "full": the sensor blocks on its next record
    trigger = ns_socket(NS_A, socket.SOCK_DGRAM)
    with trigger:
        trigger.sendto(bytes(DNS(id=1, qd=DNSQR(qname="stall.test"))), (IP_DARK, 53))
        blast = 20_000
        for _ in range(blast):
            trigger.sendto(b"x" * 18, (IP_DARK, 9))
    records = running.finish()
    (flow,) = [r for r in records if isinstance(r, Flow) and r.destination_port == 9]
    assert not flow.final  # still active when the sensor stopped
    drops = sum(r.count for r in records if isinstance(r, SourceGap))
    assert {r.reason for r in records if isinstance(r, SourceGap)} == {"kernel_drops:s0"}
    assert drops > 0 and drops == running.source.kernel_drops
    assert flow.source_packets + drops == blast  # every packet is either counted or reported
    gap = next(r for r in records if isinstance(r, SourceGap))
    event = builder.build(gap)
    set_path(event, "sekimori.seq", 1)
    set_path(event, "sekimori.gap.first_seq", 1)
    set_path(event, "sekimori.gap.last_seq", 1)
    check_contract(seal(event))
    assert event["sekimori"]["gap"]["reason"] == "netsensor:kernel_drops:s0"
    assert event["message"].endswith(f"{gap.count} packet(s) dropped by the kernel")


def test_full_flow_table_evicts_and_reports(sensor: Callable[..., Running]) -> None:
    running = sensor(max_flows=2, stats_interval=0.2, idle=30.0)  # the probe flow: 1 slot
    for port in range(46001, 46006):
        client = ns_socket(NS_A, socket.SOCK_DGRAM)
        with client:
            client.bind((IP_A, port))
            client.sendto(b"e", (IP_DARK, 9))
    records = running.until(
        lambda seen: sum(r.count for r in seen if isinstance(r, SourceGap)) >= 4
    )
    records = running.finish()
    gaps = [r for r in records if isinstance(r, SourceGap)]
    assert {g.reason for g in gaps} == {"flow_table_full:s0"}
    assert sum(g.count for g in gaps) == running.source.evictions == 4
    evicted = [r for r in records if isinstance(r, Flow) and r.evicted]
    assert len(evicted) == 4 and all(f.final for f in evicted)
    remaining = [r for r in records if isinstance(r, Flow) and not r.final]
    assert [f.source_port for f in remaining] == [46004, 46005]  # the two most recent


def test_check_compatible_names_the_problem(veth: None) -> None:
    with pytest.raises(ConfigError, match="not found"):
        in_ns(NS_A, NetSensorSource(["nonexistent0"]).check_compatible)
    bad = NetSensorSource(["s0"])
    bad.bpf_filter = "tcp port ((("
    with pytest.raises(ConfigError, match="bad capture filter"):
        in_ns(NS_A, bad.check_compatible)
    with pytest.raises(ConfigError, match="positive"):
        NetSensorSource(["s0"], idle_timeout=0).check_compatible()
    probe = (
        "from agents.sources.netsensor import NetSensorSource\n"
        "from agents.errors import PermissionDenied\n"
        "try:\n    NetSensorSource(['lo']).check_compatible()\n"
        "except PermissionDenied as exc:\n    print('denied', exc.remedy)\n"
    )
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", probe],
        capture_output=True, text=True, check=True, cwd=REPO,
    )  # fmt: skip
    assert result.stdout.startswith("denied") and "CAP_NET_RAW" in result.stdout
    assert PermissionDenied.exit_code == 9


def test_bridge_capture_sees_traffic_between_its_ports() -> None:
    """The lab's case: the sensor on a segment bridge (in the router's namespace) sees
    host-to-host traffic the bridge forwards between two ports, once (promiscuous mode)."""
    assert os.geteuid() == 0, "the sensor tests need root (ip netns, AF_PACKET)"
    router, h1, h2 = (f"skm-ns1-{os.getpid()}-{n}" for n in ("r", "h1", "h2"))
    try:
        for ns in (router, h1, h2):
            sh("ip", "netns", "add", ns)
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        sh("ip", "-n", router, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", router, "link", "set", "br0", "up")
        for index, host in ((1, h1), (2, h2)):
            sh("ip", "-n", router, "link", "add", f"p{index}", "type", "veth",
               "peer", "name", "e0", "netns", host)  # fmt: skip
            sh("ip", "-n", router, "link", "set", f"p{index}", "master", "br0", "up")
            sh("ip", "-n", host, "addr", "add", f"10.250.0.{10 + index}/24", "dev", "e0")
            sh("ip", "-n", host, "link", "set", "e0", "up")
        source = NetSensorSource(["br0"], idle_timeout=1.0)
        in_ns(router, source.check_compatible)
        stop, seen = threading.Event(), queue.Queue[Record]()

        def pump() -> None:
            enter_ns(router)
            for record in source.records(stop):
                seen.put(record)

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        records: list[Record] = []
        probe, sink = ns_socket(h1, socket.SOCK_DGRAM), ns_socket(h2, socket.SOCK_DGRAM)
        sink.bind(("10.250.0.12", 53))  # a listener: no ICMP port-unreachable to confuse the test
        with probe, sink:  # a DNS probe between the two hosts proves the capture is live
            for _ in range(int(WAIT / 0.1)):
                if any(isinstance(r, DnsMessage) for r in records):
                    break
                probe.sendto(bytes(DNS(id=9, qd=DNSQR(qname="probe.test"))), ("10.250.0.12", 53))
                with contextlib.suppress(queue.Empty):
                    records.append(seen.get(timeout=0.1))
            else:
                pytest.fail("the sensor on br0 never saw the DNS probe")
        sh("ip", "netns", "exec", h1, "ping", "-c", "3", "-i", "0.2", "-q", "10.250.0.12")
        while not (icmp := flows(records, transport="icmp")):
            try:
                records.append(seen.get(timeout=WAIT))
            except queue.Empty:
                pytest.fail(f"no ICMP flow from the bridge; got {records}")
        stop.set()
        thread.join(WAIT)
        (flow,) = icmp
        assert (flow.source_ip, flow.destination_ip, flow.interface) == (
            "10.250.0.11", "10.250.0.12", "br0",
        )  # fmt: skip
        assert (flow.source_packets, flow.destination_packets) == (3, 3)
    finally:
        for ns in (router, h1, h2):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
