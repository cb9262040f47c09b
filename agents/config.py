"""Agent configuration (one frozen dataclass) and the agent's persistent identity."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, fields
from pathlib import Path

from agents.errors import ConfigError
from agents.shipper import ShipperConfig

MiB = 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Everything ``run_agent`` needs. Durations are seconds, sizes bytes."""

    collector_url: str
    state_dir: Path
    ca_file: Path | None = None
    name: str | None = None  # agent/host name; default: the hostname
    token: str | None = None  # optional bearer token
    client_cert: Path | None = None
    client_key: Path | None = None
    process: bool = True  # netlink process connector (root)
    network: bool = True  # /proc/net polling
    realtime_reader: bool = True  # SCHED_RR for the netlink reader thread (see docs/agent.md)
    once: bool = False  # one socket snapshot + heartbeat, ship, exit
    network_interval: float = 0.5
    heartbeat_interval: float = 60.0
    spool_max_bytes: int = 64 * MiB
    spool_segment_bytes: int = 4 * MiB
    fsync_interval: float = 0.0  # 0: fsync every append batch
    batch_max_events: int = 1000
    batch_max_bytes: int = 1 * MiB
    ship_interval: float = 1.0
    backoff_max: float = 60.0
    drain_timeout: float = 5.0  # how long shutdown tries to ship what is pending
    proc_root: Path = Path("/proc")
    allowed_actions: frozenset[str] = frozenset()  # local response policy (default: none)
    control_interval: float = 5.0  # command poll / renewal check period
    netns: str | None = None  # run for this network namespace (/run/netns/NAME); see netns.py
    sensor_interfaces: tuple[str, ...] = ()  # packet sensor on these interfaces (scapy)
    flow_active_timeout: float = 60.0  # sensor: a flow_update for flows older than this
    flow_idle_timeout: float = 30.0  # sensor: a flow ends after this long without packets

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"agent setting {item.name} must not be negative: {value}")
        positive = (
            "network_interval",
            "heartbeat_interval",
            "ship_interval",
            "control_interval",
            "flow_active_timeout",
            "flow_idle_timeout",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"agent setting {name} must be positive")
        if self.netns is not None and (
            not self.netns or "/" in self.netns or self.netns in (".", "..")
        ):
            raise ConfigError(
                f"bad network namespace name {self.netns!r}", remedy="see `ip netns list`"
            )
        if any(not name or "/" in name for name in self.sensor_interfaces):
            raise ConfigError(f"bad sensor interface names {list(self.sensor_interfaces)}")
        if self.batch_max_events < 1 or self.batch_max_bytes < 1024:
            raise ConfigError("batch limits too small (>= 1 event and >= 1 KiB)")
        if self.client_key is not None and self.client_cert is None:
            raise ConfigError("--client-key given without --client-cert")
        from agents.schema import RESPONSE_ACTIONS

        if unknown := sorted(self.allowed_actions - RESPONSE_ACTIONS):
            raise ConfigError(
                f"unknown response actions {unknown}: one of {sorted(RESPONSE_ACTIONS)}"
            )

    def shipper_config(self) -> ShipperConfig:
        return ShipperConfig(
            url=self.collector_url,
            ca_file=self.ca_file,
            client_cert=self.client_cert,
            client_key=self.client_key,
            token=self.token,
            max_events=self.batch_max_events,
            max_bytes=self.batch_max_bytes,
            backoff_max=self.backoff_max,
            idle_interval=self.ship_interval,
        )


def prepare_state_dir(state_dir: Path) -> None:
    try:
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the agent state directory {state_dir}: {exc}",
            remedy="pass a writable --state-dir",
        ) from exc


def load_or_create_agent_id(state_dir: Path) -> str:
    """A random id created on first start and kept in ``<state_dir>/agent_id``."""
    path = state_dir / "agent_id"
    try:
        existing = path.read_text().strip()
    except FileNotFoundError:
        existing = ""
    if existing:
        return existing
    agent_id = uuid.uuid4().hex
    tmp = state_dir / "agent_id.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(agent_id + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return agent_id
