"""Capacity of the network sensor (agents/sources/netsensor.py), packets per second.

    .venv/bin/python bench/sensor_capacity.py --packets 200000 [--live 300000]

Replay: N pre-built raw Ethernet frames (TCP connections of 8 packets each with 100/400-byte
payloads, and DNS query/answer pairs, about 80/20) go through ``SensorPipeline.feed`` (the live
sensor's decode -> flow table -> DNS path, with a flow-timeout sweep every 10,000 packets),
compared in the same run with two baselines over the same frames: an empty loop, and scapy's
plain ``Ether(raw)`` dissection (on a slice: it is slow). Prints packets/s and the ratios.

Live (``--live K``, needs root): two namespaces ``skm-ns1-bench-<pid>-{a,b}`` joined by a veth;
a separate process blasts K UDP datagrams from 1,000 source ports as fast as it can, while the
sensor (``NetSensorSource``, in this process) captures on the receiving side; reports packets
sent (and the offered rate), seen in flow records and kernel drops (PACKET_STATISTICS):
seen + drops must equal sent. On 2 cores the Python sender is the limit of the offered rate.
Results go to stdout as JSON; bench/RESULTS.md records them by hand.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from scapy.layers.dns import DNS, DNSQR, DNSRR  # noqa: E402
from scapy.layers.inet import IP, TCP, UDP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402

from agents.sources.base import Flow  # noqa: E402
from agents.sources.netsensor import NetSensorSource, SensorPipeline  # noqa: E402

CLIENT, SERVER, RESOLVER = "10.250.1.10", "10.250.2.20", "10.250.3.53"


def _frames_of_connection() -> list[bytes]:
    c, s = IP(src=CLIENT, dst=SERVER), IP(src=SERVER, dst=CLIENT)
    sport, dport = 40000, 443
    steps = [
        c / TCP(sport=sport, dport=dport, flags="S"),
        s / TCP(sport=dport, dport=sport, flags="SA"),
        c / TCP(sport=sport, dport=dport, flags="A"),
        c / TCP(sport=sport, dport=dport, flags="PA") / (b"q" * 100),
        s / TCP(sport=dport, dport=sport, flags="PA") / (b"r" * 400),
        c / TCP(sport=sport, dport=dport, flags="FA"),
        s / TCP(sport=dport, dport=sport, flags="FA"),
        c / TCP(sport=sport, dport=dport, flags="A"),
    ]
    return [bytes(Ether() / step) for step in steps]


def _frames_of_lookup() -> list[bytes]:
    query = DNS(id=1, rd=1, qd=DNSQR(qname="host-00000.example.lg.jp", qtype="A"))
    answer = DNS(
        id=1, qr=1, qd=query.qd, an=[DNSRR(rrname="host-00000.example.lg.jp", rdata="10.9.9.9")]
    )
    return [
        bytes(Ether() / IP(src=CLIENT, dst=RESOLVER) / UDP(sport=50000, dport=53) / query),
        bytes(Ether() / IP(src=RESOLVER, dst=CLIENT) / UDP(sport=53, dport=50000) / answer),
    ]


def synthetic_frames(count: int) -> list[bytes]:
    """``count`` frames: connection and lookup templates with a distinct port per instance
    (bytes patched in place: IPv4 without options, so the ports sit at offsets 34 and 36)."""
    connection, lookup = _frames_of_connection(), _frames_of_lookup()
    frames: list[bytes] = []
    instance = 0
    while len(frames) < count:
        instance += 1
        port = 1024 + instance % 60000
        is_lookup = instance % 5 == 0
        template = lookup if is_lookup else connection
        for index, raw in enumerate(template):
            data = bytearray(raw)
            from_client = (index % 2 == 0) if is_lookup else (index in (0, 2, 3, 5, 7))
            struct.pack_into("!H", data, 34 if from_client else 36, port)
            if is_lookup:  # a distinct name per lookup: host-NNNNN
                at = bytes(data).find(b"host-")
                data[at + 5 : at + 10] = f"{instance % 100000:05d}".encode()
            frames.append(bytes(data))
    return frames[:count]


def rate(count: int, seconds: float) -> float:
    return round(count / seconds) if seconds > 0 else 0.0


def replay(frames: list[bytes], scapy_slice: int) -> dict[str, Any]:
    start = time.perf_counter()
    for _raw in frames:
        pass
    noop = time.perf_counter() - start

    pipeline = SensorPipeline("bench0", active_timeout=60.0, idle_timeout=30.0, max_flows=50_000)
    records = 0
    start = time.perf_counter()
    base = time.time()
    for index, raw in enumerate(frames):
        stamp = base + index * 1e-5
        records += len(pipeline.feed(raw, stamp))
        if index % 10_000 == 0:
            records += len(pipeline.table.expire(stamp))
    records += len(pipeline.table.flush())
    sensor = time.perf_counter() - start

    subset = frames[:scapy_slice]
    start = time.perf_counter()
    for raw in subset:
        Ether(raw)
    dissect = time.perf_counter() - start
    sensor_rate = rate(len(frames), sensor)
    scapy_rate = rate(len(subset), dissect)
    return {
        "frames": len(frames),
        "records": records,
        "undecodable": pipeline.undecodable,
        "noop_loop_pps": rate(len(frames), noop),
        "sensor_pipeline_pps": sensor_rate,
        "scapy_ether_dissect_pps": scapy_rate,
        "scapy_frames": len(subset),
        "ratio_sensor_vs_scapy_dissect": round(sensor_rate / scapy_rate, 2) if scapy_rate else None,
    }


BLAST = """
import socket, sys, time
count, target = int(sys.argv[1]), sys.argv[2]
socks = []
for port in range(20000, 21000):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.250.0.2", port))
    socks.append(s)
payload = b"x" * 64
start = time.perf_counter()
for i in range(count):
    socks[i % 1000].sendto(payload, (target, 9))
print(time.perf_counter() - start)
"""


def _sh(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _enter(ns: str) -> None:
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if ctypes.CDLL(None, use_errno=True).setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")
    finally:
        os.close(fd)


def live(count: int) -> dict[str, Any]:
    a, b = f"skm-ns1-bench-{os.getpid()}-a", f"skm-ns1-bench-{os.getpid()}-b"
    for ns in (a, b):
        _sh("ip", "netns", "add", ns)
    try:
        for ns in (a, b):
            _sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        _sh("ip", "-n", a, "link", "add", "s0", "type", "veth", "peer", "name", "s1", "netns", b)
        _sh("ip", "-n", a, "addr", "add", "10.250.0.1/24", "dev", "s0")
        _sh("ip", "-n", b, "addr", "add", "10.250.0.2/24", "dev", "s1")
        _sh("ip", "-n", a, "link", "set", "s0", "up")
        _sh("ip", "-n", b, "link", "set", "s1", "up")
        return _measure(a, b, count)
    finally:
        for ns in (a, b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def _measure(a: str, b: str, count: int) -> dict[str, Any]:
    source = NetSensorSource(["s0"], idle_timeout=5.0)
    stop, opened = threading.Event(), threading.Event()
    flows: list[Flow] = []

    def run() -> None:
        _enter(a)
        source.check_compatible()
        opened.set()
        flows.extend(r for r in source.records(stop) if isinstance(r, Flow))

    thread = threading.Thread(target=run)
    thread.start()
    opened.wait()
    time.sleep(1.0)  # the capture sockets are open and bound
    start = time.perf_counter()
    sent = subprocess.run(
        ["ip", "netns", "exec", b, sys.executable, "-c", BLAST, str(count), "10.250.0.1"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    blast_seconds = float(sent.stdout)
    time.sleep(1.0)  # let the sensor drain its socket
    elapsed = time.perf_counter() - start
    stop.set()
    thread.join()
    seen = sum(f.source_packets for f in flows if f.source_ip == "10.250.0.2")
    return {
        "sent": count,
        "send_pps": rate(count, blast_seconds),
        "seen_in_flows": seen,
        "kernel_drops": source.kernel_drops,
        "seen_plus_drops": seen + source.kernel_drops,
        "wall_seconds_blast_plus_drain": round(elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--scapy-slice", type=int, default=20_000)
    parser.add_argument("--live", type=int, default=0, help="also blast K packets live (root)")
    args = parser.parse_args()
    frames = synthetic_frames(args.packets)
    result: dict[str, Any] = {"replay": replay(frames, args.scapy_slice)}
    if args.live:
        result["live"] = live(args.live)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
