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

from agents import __version__, netns
from agents.config import AgentConfig, MiB
from agents.errors import ConfigError, SekimoriError
from agents.identity import enroll, load_identity
from agents.runtime import install_signal_handlers, run_agent
from agents.schema import RESPONSE_ACTIONS

TOKEN_ENV = "SEKIMORI_AGENT_TOKEN"  # noqa: S105 - an env var name


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agents", description="sekimori endpoint agent (process + network)"
    )
    add = parser.add_argument
    add("--collector", metavar="URL", help="https://HOST:PORT (default: the enrolled collector)")
    add("--ca", type=Path, metavar="PEM", help="collector CA (ca.pem in its data dir)")
    add("--state-dir", type=Path, required=True, metavar="DIR", help="agent id + spool")
    add("--name", help="agent/host name (default: hostname)")
    add("--token-file", type=Path, help=f"bearer token file (or env {TOKEN_ENV})")
    add("--client-cert", type=Path, help="client certificate PEM (mutual TLS)")
    add("--client-key", type=Path, help="client key PEM (mutual TLS)")
    add(
        "--no-process",
        "--no-process-events",
        dest="no_process",
        action="store_true",
        help="disable the netlink process source",
    )
    add(
        "--no-network",
        "--no-socket-events",
        dest="no_network",
        action="store_true",
        help="disable the /proc/net socket source",
    )
    add(
        "--netns",
        metavar="NAME",
        help="run for the network namespace /run/netns/NAME (start as root in the initial "
        "namespace, not under `ip netns exec`; see docs/agent.md)",
    )
    add(
        "--sensor-interface",
        action="append",
        default=[],
        metavar="IFACE",
        help="watch this interface with the packet sensor (repeatable; needs scapy)",
    )
    add("--flow-active-timeout", type=float, default=60.0, metavar="S", help="sensor flow update")
    add("--flow-idle-timeout", type=float, default=30.0, metavar="S", help="sensor flow end")
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
    add(
        "--allow-action",
        action="append",
        default=[],
        choices=sorted(RESPONSE_ACTIONS),
        help="enable a response action on this host (repeatable; default: none)",
    )
    add("--control-interval", type=float, default=5.0, metavar="S", help="command poll period")
    add("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add("--version", action="version", version=f"sekimori-agent {__version__}")
    return parser


def build_enroll_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m agents enroll",
        description="enroll this host: key pair + CSR + one-time token -> client certificate",
    )
    add = parser.add_argument
    add("url", metavar="URL", help="https://HOST:PORT of the collector")
    add("token", metavar="TOKEN", help="one-time enrollment token ('-' reads it from stdin)")
    add("--ca", type=Path, required=True, metavar="PEM", help="collector CA to pin (ca.pem)")
    add("--state-dir", type=Path, required=True, metavar="DIR", help="agent state directory")
    add("--name", help="agent/host name (default: hostname)")
    add("--netns", metavar="NAME", help="enroll from inside the network namespace NAME")
    return parser


def _report(exc: SekimoriError | OSError) -> int:
    """Print the error (and its remedy) to stderr; the exit code for it."""
    sys.stderr.write(f"error: {exc}\n")
    if isinstance(exc, SekimoriError):
        if exc.remedy:
            sys.stderr.write(f"hint: {exc.remedy}\n")
        return exc.exit_code
    return 1


def enroll_main(argv: Sequence[str]) -> int:
    args = build_enroll_parser().parse_args(argv)
    token = sys.stdin.readline().strip() if args.token == "-" else args.token  # noqa: S105
    try:
        if args.netns is not None:  # single-threaded here: the whole process moves
            netns.enter(args.netns)
        identity = enroll(
            args.url, token, state_dir=args.state_dir, ca_file=args.ca, name=args.name
        )
    except (SekimoriError, OSError) as exc:
        return _report(exc)
    sys.stdout.write(f"enrolled as agent {identity.agent_id}\n")
    return 0


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    collector = args.collector
    if collector is None:
        identity = load_identity(args.state_dir)
        if identity is None:
            raise ConfigError(
                "no --collector and this state dir is not enrolled",
                remedy="python -m agents enroll URL TOKEN --ca ca.pem --state-dir DIR",
            )
        collector = identity.collector_url
    token = os.environ.get(TOKEN_ENV)
    if args.token_file is not None:
        token = args.token_file.read_text().strip()
    max_bytes = args.spool_max_mib * MiB
    return AgentConfig(
        collector_url=collector,
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
        allowed_actions=frozenset(args.allow_action),
        control_interval=args.control_interval,
        netns=args.netns,
        sensor_interfaces=tuple(args.sensor_interface),
        flow_active_timeout=args.flow_active_timeout,
        flow_idle_timeout=args.flow_idle_timeout,
    )


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["enroll"]:
        return enroll_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    received = install_signal_handlers(stop)
    try:
        run_agent(config_from_args(args), stop)
    except (SekimoriError, OSError) as exc:
        return _report(exc)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 130 if received.get(signal.SIGINT) else 0


if __name__ == "__main__":
    sys.exit(main())
