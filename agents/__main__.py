"""``python -m agents``: run the endpoint agent (stdlib argparse; the click CLI wraps
:func:`agents.runtime.run_agent` the same way)."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from agents import __version__
from agents.config import AgentConfig, MiB
from agents.errors import SekimoriError
from agents.runtime import install_signal_handlers, run_agent

TOKEN_ENV = "SEKIMORI_AGENT_TOKEN"  # noqa: S105 - an env var name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agents", description="sekimori endpoint agent (process + network)"
    )
    add = parser.add_argument
    add("--collector", required=True, metavar="URL", help="https://HOST:PORT of the collector")
    add("--ca", type=Path, metavar="PEM", help="collector CA (ca.pem in its data dir)")
    add("--state-dir", type=Path, required=True, metavar="DIR", help="agent id + spool")
    add("--name", help="agent/host name (default: hostname)")
    add("--token-file", type=Path, help=f"bearer token file (or env {TOKEN_ENV})")
    add("--client-cert", type=Path, help="client certificate PEM (mutual TLS)")
    add("--client-key", type=Path, help="client key PEM (mutual TLS)")
    add("--no-process", action="store_true", help="disable the netlink process source")
    add("--no-network", action="store_true", help="disable the /proc/net socket source")
    add("--no-realtime", action="store_true", help="run the netlink reader at normal priority")
    add("--once", action="store_true", help="snapshot sockets, heartbeat, ship, exit")
    add("--network-interval", type=float, default=0.5, metavar="S")
    add("--heartbeat-interval", type=float, default=60.0, metavar="S")
    add("--spool-max-mib", type=int, default=64, metavar="MIB")
    add(
        "--fsync-interval",
        type=float,
        default=0.0,
        metavar="S",
        help="0 = fsync every append batch (default)",
    )
    add("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add("--version", action="version", version=f"sekimori-agent {__version__}")
    return parser


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    token = os.environ.get(TOKEN_ENV)
    if args.token_file is not None:
        token = args.token_file.read_text().strip()
    max_bytes = args.spool_max_mib * MiB
    return AgentConfig(
        collector_url=args.collector,
        ca_file=args.ca,
        state_dir=args.state_dir,
        name=args.name,
        token=token or None,
        client_cert=args.client_cert,
        client_key=args.client_key,
        process=not args.no_process,
        network=not args.no_network,
        realtime_reader=not args.no_realtime,
        once=args.once,
        network_interval=args.network_interval,
        heartbeat_interval=args.heartbeat_interval,
        spool_max_bytes=max_bytes,
        spool_segment_bytes=min(4 * MiB, max_bytes // 4),
        fsync_interval=args.fsync_interval,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    received = install_signal_handlers(stop)
    try:
        run_agent(config_from_args(args), stop)
    except SekimoriError as exc:
        sys.stderr.write(f"error: {exc}\n")
        if exc.remedy:
            sys.stderr.write(f"hint: {exc.remedy}\n")
        return exc.exit_code
    except OSError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 130 if received.get(signal.SIGINT) else 0


if __name__ == "__main__":
    sys.exit(main())
