"""``python -m collector.lab.services KIND[,KIND...] --bind ADDR``: the lab's service processes.

Run by the lab session inside a host's namespace (``ip netns exec skm-<host> ...``). Kinds and
their fixed ports:

- ``dns`` (UDP 53): the designated resolver; ``--record name=address`` (repeatable).
- ``ntp`` (UDP 123): NTP-like time responder.
- ``proxy`` (TCP 3128): the security cloud's forward proxy.
- ``web`` (TCP 80), ``beacon`` (TCP 443), ``catcher`` (TCP 4444): the outside host.
- ``app`` (TCP 8443): a business system on an LGWAN / My Number server.

Stdlib only; SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from functools import partial
from typing import Final

from collector.lab.dns_service import serve_dns, serve_ntp
from collector.lab.http_services import serve_beacon, serve_catcher, serve_proxy, serve_web

PORTS: Final[dict[str, int]] = {
    "dns": 53,
    "ntp": 123,
    "proxy": 3128,
    "web": 80,
    "beacon": 443,
    "catcher": 4444,
    "app": 8443,
}
KINDS: Final = frozenset(PORTS)


def _server(kind: str, bind: str, records: dict[str, str]) -> Callable[[threading.Event], None]:
    port = PORTS[kind]
    if kind == "dns":
        return partial(serve_dns, bind, records, port=port)
    if kind == "ntp":
        return partial(serve_ntp, bind, port=port)
    table: dict[str, Callable[[str, int, threading.Event], None]] = {
        "proxy": serve_proxy,
        "web": serve_web,
        "beacon": serve_beacon,
        "catcher": serve_catcher,
        "app": serve_beacon,
    }
    return partial(table[kind], bind, port)


def parse_records(items: Sequence[str]) -> dict[str, str]:
    records = {}
    for item in items:
        name, sep, address = item.partition("=")
        if not sep:
            raise SystemExit(f"--record {item!r}: expected name=address")
        records[name.strip(".").lower()] = address
    return records


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.lab.services")
    parser.add_argument("kinds", help=f"comma-separated: {', '.join(sorted(KINDS))}")
    parser.add_argument("--bind", required=True, help="the address to listen on")
    parser.add_argument("--record", action="append", default=[], help="name=address (dns)")
    args = parser.parse_args(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = sorted(set(kinds) - KINDS)
    if unknown:
        parser.error(f"unknown service kinds {unknown}")
    records = parse_records(args.record)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    failures: list[str] = []

    def run(kind: str) -> None:
        try:
            _server(kind, args.bind, records)(stop)
        except OSError as exc:
            failures.append(f"{kind}: {exc}")
            stop.set()

    threads = [threading.Thread(target=run, args=(k,), name=k, daemon=True) for k in kinds]
    for thread in threads:
        thread.start()
    sys.stdout.write(f"serving {','.join(kinds)} on {args.bind}\n")
    sys.stdout.flush()
    stop.wait()
    for thread in threads:
        thread.join(5)
    if failures:
        sys.stderr.write("error: " + "; ".join(failures) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
