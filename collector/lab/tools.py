"""``python -m collector.lab.tools TOOL ...``: the client programs scenarios and the baseline
run inside a lab host's namespace (stdlib only, fixed behaviour, no shell).

- ``scan HOST FIRST LAST``: a TCP connect scanner over a port range (like ``nmap -sT``).
- ``dns-burst RESOLVER DOMAIN COUNT``: COUNT queries for random high-entropy subdomains of
  DOMAIN (the shape of DNS tunnelling: data encoded in labels).
- ``lookup RESOLVER NAME...``: ordinary A queries.
- ``beacon HOST PORT COUNT INTERVAL JITTER``: periodic connections that send a hello and read
  the answer (C2 check-ins), each interval varied by +-JITTER (a fraction).
- ``ntp SERVER COUNT INTERVAL``: NTP-like client requests.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import socket
import struct
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from collector.lab.dns_service import build_query


def connect_scan(host: str, ports: range, timeout: float = 0.5, workers: int = 32) -> list[int]:
    def probe(port: int) -> int | None:
        with socket.socket() as sock:
            sock.settimeout(timeout)
            return port if sock.connect_ex((host, port)) == 0 else None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [p for p in pool.map(probe, ports) if p is not None]


def query(resolver: str, name: str, timeout: float = 1.0) -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.connect((resolver, 53))  # connected, as glibc's stub resolver does
        query_id = random.randrange(65536)  # noqa: S311 - a DNS query id
        sock.send(build_query(name, query_id))
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


def tunnel_label(length: int = 40) -> str:
    """A base32 label of random bytes: what exfiltrated data looks like in a query name."""
    raw = base64.b32encode(os.urandom(length)).decode().rstrip("=").lower()
    return raw[:length]


def dns_burst(resolver: str, domain: str, count: int, pause: float = 0.02) -> int:
    answered = 0
    for _ in range(count):
        name = f"{tunnel_label()}.{tunnel_label(24)}.{domain}"
        answered += query(resolver, name) is not None
        time.sleep(pause)
    return answered


def beacon(host: str, port: int, count: int, interval: float, jitter: float) -> int:
    done = 0
    for index in range(count):
        try:
            with socket.create_connection((host, port), timeout=3) as sock:
                sock.sendall(b"\x16\x03\x01\x00\x40" + os.urandom(64))
                sock.recv(4096)
                done += 1
        except OSError:
            pass
        if index < count - 1:
            time.sleep(max(0.05, interval * (1 + random.uniform(-jitter, jitter))))  # noqa: S311
    return done


def ntp(server: str, count: int, interval: float) -> int:
    answered = 0
    for index in range(count):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            now = time.time() + 2_208_988_800
            packet = b"\x23" + b"\x00" * 39 + struct.pack("!II", int(now), 0)
            sock.connect((server, 123))  # connected, as ntpdate/sntp do
            sock.send(packet)
            try:
                sock.recv(512)
                answered += 1
            except TimeoutError:
                pass
        if index < count - 1:
            time.sleep(interval)
    return answered


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.lab.tools")
    sub = parser.add_subparsers(dest="tool", required=True)
    p = sub.add_parser("scan")
    p.add_argument("host")
    p.add_argument("first", type=int)
    p.add_argument("last", type=int)
    p = sub.add_parser("dns-burst")
    p.add_argument("resolver")
    p.add_argument("domain")
    p.add_argument("count", type=int)
    p = sub.add_parser("lookup")
    p.add_argument("resolver")
    p.add_argument("names", nargs="+")
    p = sub.add_parser("beacon")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("count", type=int)
    p.add_argument("interval", type=float)
    p.add_argument("jitter", type=float)
    p = sub.add_parser("ntp")
    p.add_argument("server")
    p.add_argument("count", type=int)
    p.add_argument("interval", type=float)
    args = parser.parse_args(argv)
    if args.tool == "scan":
        result = f"open: {connect_scan(args.host, range(args.first, args.last + 1))}"
    elif args.tool == "dns-burst":
        result = f"answered {dns_burst(args.resolver, args.domain, args.count)}/{args.count}"
    elif args.tool == "lookup":
        answered = sum(query(args.resolver, name) is not None for name in args.names)
        result = f"answered {answered}/{len(args.names)}"
    elif args.tool == "beacon":
        done = beacon(args.host, args.port, args.count, args.interval, args.jitter)
        result = f"check-ins {done}/{args.count}"
    else:
        result = f"answered {ntp(args.server, args.count, args.interval)}/{args.count}"
    sys.stdout.write(result + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
