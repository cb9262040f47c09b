"""Network sensor source: passive capture on one or more interfaces -> DNS events and flows.

One ``AF_PACKET`` socket per interface (promiscuous, so a bridge device also shows the traffic
it forwards between its ports), with a BPF filter compiled by scapy (libpcap) and attached in
the kernel before the socket is bound, so only IP traffic reaches Python. Frames are decoded by
:func:`agents.sources.flows.decode_frame` (plain byte reads, no per-packet scapy
dissection, which is much slower: see bench/sensor_capacity.py) into one
:class:`~agents.sources.flows.FlowTable` per interface; UDP/TCP port 53 payloads are decoded by
:mod:`agents.sources.dnsparse`.

Loss is never silent: the kernel's ``PACKET_STATISTICS`` (packets dropped because the socket
buffer was full, e.g. while the agent's queue is blocked) and flow-table evictions are reported
every ``stats_interval`` seconds as :class:`~agents.sources.base.SourceGap` records, only when
non-zero. scapy is imported lazily: the agent package stays standard-library only.
"""

from __future__ import annotations

import select
import socket
import struct
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Final

from agents.errors import ConfigError, PermissionDenied
from agents.sources.base import DnsMessage, Record, SourceGap
from agents.sources.dnsparse import DnsDecodeError, parse_dns
from agents.sources.flows import DNS_PORT, FlowTable, Packet, decode_frame

DEFAULT_FILTER: Final = "ip or ip6 or (vlan and (ip or ip6))"
ETH_P_ALL: Final = 0x0003
SOL_PACKET: Final = 263
PACKET_ADD_MEMBERSHIP: Final = 1
PACKET_MR_PROMISC: Final = 1
PACKET_STATISTICS: Final = 6
SO_ATTACH_FILTER: Final = 26
SO_RCVBUFFORCE: Final = 33
SO_TIMESTAMPNS: Final = 35
DLT_EN10MB: Final = 1
ETHERNET_LINKS: Final = frozenset({1, 772})  # ARPHRD_ETHER, ARPHRD_LOOPBACK
SNAPLEN: Final = 65535
BATCH: Final = 512  # frames read per socket per wake-up
STOP_DRAIN_BATCHES: Final = 64  # at stop, read at most this many batches per socket
_TIMESPEC: Final = struct.Struct("@qq")


def attach_bpf(sock: socket.socket, expression: str) -> None:
    """Compile ``expression`` with libpcap (through scapy) and attach it to ``sock``."""
    try:
        from scapy.arch.common import compile_filter, free_filter  # lazy: agent stays stdlib
        from scapy.error import Scapy_Exception
        from scapy.libs.structures import sock_fprog
    except ImportError as exc:
        raise ConfigError(
            f"the network sensor needs scapy: {exc}",
            remedy="install sekimori with its dependencies (pip install scapy)",
        ) from exc
    try:
        program = compile_filter(expression, linktype=DLT_EN10MB)
    except ImportError as exc:
        raise ConfigError(
            f"cannot compile the capture filter: {exc}",
            remedy="install libpcap (Debian/Ubuntu: apt-get install libpcap0.8)",
        ) from exc
    except Scapy_Exception as exc:
        raise ConfigError(f"bad capture filter {expression!r}: {exc}") from exc
    try:
        fprog = sock_fprog(program.bf_len, program.bf_insns)
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
    finally:
        free_filter(program)


class Capture:
    """One promiscuous AF_PACKET socket on one interface (both directions)."""

    def __init__(self, interface: str, expression: str | None, *, rcvbuf: int) -> None:
        self.interface = interface
        try:
            index = socket.if_nametoindex(interface)
        except OSError as exc:
            raise ConfigError(
                f"network interface {interface!r} not found",
                remedy="list interfaces with 'ip link show' (inside the right network namespace)",
            ) from exc
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
        except PermissionError as exc:
            raise PermissionDenied(
                "packet capture needs root or CAP_NET_RAW",
                remedy="run the agent as root, or grant it CAP_NET_RAW (setcap cap_net_raw+ep)",
            ) from exc
        try:
            self._setup(index, expression, rcvbuf)
        except BaseException:
            self.sock.close()
            raise

    def _setup(self, index: int, expression: str | None, rcvbuf: int) -> None:
        if expression:
            attach_bpf(self.sock, expression)  # before bind: no unfiltered frame gets queued
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except PermissionError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        mreq = struct.pack("iHH8s", index, PACKET_MR_PROMISC, 0, b"")
        self.sock.setsockopt(SOL_PACKET, PACKET_ADD_MEMBERSHIP, mreq)
        self.sock.bind((self.interface, ETH_P_ALL))
        link_type = self.sock.getsockname()[3]
        if link_type not in ETHERNET_LINKS:
            raise ConfigError(
                f"interface {self.interface!r} is not Ethernet-framed (ARPHRD {link_type})",
                remedy="capture on an Ethernet, veth, bridge or loopback interface",
            )
        self.sock.setblocking(False)

    def fileno(self) -> int:
        return self.sock.fileno()

    def read_batch(self, limit: int = BATCH) -> list[tuple[bytes, float]]:
        """Up to ``limit`` queued frames with their kernel receive time (epoch seconds)."""
        frames: list[tuple[bytes, float]] = []
        for _ in range(limit):
            try:
                data, ancillary, _flags, _addr = self.sock.recvmsg(SNAPLEN, 64)
            except (BlockingIOError, InterruptedError):
                break
            stamp = None
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanos = _TIMESPEC.unpack_from(value)
                    stamp = seconds + nanos / 1e9
            frames.append((data, stamp if stamp is not None else time.time()))
        return frames

    def drops(self) -> tuple[int, int]:
        """(packets received, packets dropped) since the last call (the kernel resets them)."""
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)
        received, dropped = struct.unpack("II", raw)
        return received, dropped

    def close(self) -> None:
        self.sock.close()


class SensorPipeline:
    """decode -> flow table -> DNS for one interface; what the live sensor and the bench run."""

    def __init__(
        self, interface: str, *, active_timeout: float, idle_timeout: float, max_flows: int
    ) -> None:
        self.interface = interface
        self.table = FlowTable(
            interface=interface,
            active_timeout=active_timeout,
            idle_timeout=idle_timeout,
            max_flows=max_flows,
        )
        self.packets = 0
        self.undecodable = 0
        self.dns_errors = 0
        self.reported_evictions = 0

    def feed(self, frame: bytes, timestamp: float) -> list[Record]:
        self.packets += 1
        packet = decode_frame(frame, timestamp)
        if packet is None:
            self.undecodable += 1
            return []
        out: list[Record] = list(self.table.add(packet))
        if packet.payload:
            message = self._dns(packet)
            if message is not None:
                out.append(message)
        return out

    def _dns(self, packet: Packet) -> DnsMessage | None:
        data = packet.payload
        if packet.proto == 6:  # one whole length-prefixed message per segment, else skipped
            if len(data) < 2 or int.from_bytes(data[:2]) != len(data) - 2:
                return None
            data = data[2:]
        try:
            parsed = parse_dns(data)
        except DnsDecodeError:
            self.dns_errors += 1
            return None
        if (packet.sport if parsed.is_answer else packet.dport) != DNS_PORT:
            return None  # a query *from* port 53 or an answer *to* it: not DNS we understand
        return DnsMessage(
            timestamp=packet.timestamp,
            interface=self.interface,
            transport="tcp" if packet.proto == 6 else "udp",
            family="ipv6" if packet.family == "ipv6" else "ipv4",
            source_ip=packet.src,
            source_port=packet.sport or 0,
            destination_ip=packet.dst,
            destination_port=packet.dport or 0,
            is_answer=parsed.is_answer,
            id=parsed.id,
            question_name=parsed.question_name,
            question_type=parsed.question_type,
            response_code=parsed.rcode if parsed.is_answer else None,
            answers=parsed.answers,
            resolved_ips=parsed.resolved_ips,
            malformed=parsed.malformed,
        )


class NetSensorSource:
    """Plugin: passive DNS and flow records from the given interfaces (docs/sensor.md)."""

    name = "netsensor"
    bpf_filter: str | None = DEFAULT_FILTER
    rcvbuf = 8 * 1024 * 1024  # per socket; bigger absorbs longer stalls of the agent queue
    sweep_interval = 0.5  # seconds between flow-timeout sweeps
    stats_interval = 5.0  # seconds between drop/eviction reports

    def __init__(
        self,
        interfaces: Sequence[str],
        *,
        active_timeout: float = 60.0,
        idle_timeout: float = 30.0,
        max_flows: int = 50_000,
    ) -> None:
        self.interfaces = list(interfaces)
        self.active_timeout = active_timeout
        self.idle_timeout = idle_timeout
        self.max_flows = max_flows
        self.kernel_drops = 0
        self.evictions = 0
        self.packets = 0

    def check_compatible(self) -> None:
        if not self.interfaces:
            raise ConfigError("the network sensor needs at least one interface")
        if self.active_timeout <= 0 or self.idle_timeout <= 0 or self.max_flows < 1:
            raise ConfigError(
                "sensor timeouts must be positive and max_flows at least 1",
                remedy="e.g. active_timeout=60, idle_timeout=30, max_flows=50000",
            )
        for interface in self.interfaces:
            Capture(interface, self.bpf_filter, rcvbuf=self.rcvbuf).close()

    def records(self, stop: threading.Event) -> Iterator[Record]:
        captures: list[Capture] = []
        try:
            for interface in self.interfaces:
                captures.append(Capture(interface, self.bpf_filter, rcvbuf=self.rcvbuf))
            yield from self._loop(captures, stop)
        finally:
            for capture in captures:
                capture.close()

    def _loop(self, captures: list[Capture], stop: threading.Event) -> Iterator[Record]:
        pipelines = {
            c.fileno(): SensorPipeline(
                c.interface,
                active_timeout=self.active_timeout,
                idle_timeout=self.idle_timeout,
                max_flows=self.max_flows,
            )
            for c in captures
        }
        next_sweep = next_stats = time.monotonic()
        while not stop.is_set():
            ready, _, _ = select.select(captures, [], [], self.sweep_interval)
            for capture in ready:
                pipeline = pipelines[capture.fileno()]
                for frame, stamp in capture.read_batch():
                    yield from pipeline.feed(frame, stamp)
            clock = time.monotonic()
            if clock >= next_sweep:
                next_sweep = clock + self.sweep_interval
                for pipeline in pipelines.values():
                    yield from pipeline.table.expire(time.time())
            if clock >= next_stats:
                next_stats = clock + self.stats_interval
                yield from self._losses(captures, pipelines)
        for capture in captures:  # what is already queued is still counted, not lost
            for _ in range(STOP_DRAIN_BATCHES):
                frames = capture.read_batch()
                for frame, stamp in frames:
                    yield from pipelines[capture.fileno()].feed(frame, stamp)
                if len(frames) < BATCH:
                    break
        for pipeline in pipelines.values():
            yield from pipeline.table.flush()
        yield from self._losses(captures, pipelines)

    def _losses(
        self, captures: list[Capture], pipelines: dict[int, SensorPipeline]
    ) -> Iterator[SourceGap]:
        now = time.time()
        for capture in captures:
            pipeline = pipelines[capture.fileno()]
            _received, dropped = capture.drops()
            self.kernel_drops += dropped
            self.packets = sum(p.packets for p in pipelines.values())
            if dropped:
                yield SourceGap(
                    timestamp=now,
                    source=self.name,
                    reason=f"kernel_drops:{capture.interface}",
                    count=dropped,
                )
            evicted = pipeline.table.evictions - pipeline.reported_evictions
            if evicted:
                pipeline.reported_evictions = pipeline.table.evictions
                self.evictions += evicted
                yield SourceGap(
                    timestamp=now,
                    source=self.name,
                    reason=f"flow_table_full:{capture.interface}",
                    count=evicted,
                )
