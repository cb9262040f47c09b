"""Library calls behind the operator commands (the CLI stays a thin layer over these).

``init_collector`` creates (or installs) the collector CA and server certificate and the
agent registry; the token, revoke and list calls open ``<data_dir>/registry.db`` directly, so
they work whether or not the collector is running (a revocation reaches a running collector
within its ``revocation_refresh``, 1 s by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agents.errors import ConfigError
from agents.schema import parse_duration as schema_duration
from collector.actions import ActionQueue, Command
from collector.registry import AgentRecord, Registry
from collector.tls import TlsFiles, ensure_tls


def parse_duration(text: str) -> float:
    """``90s``, ``15m``, ``1h``, ``7d`` -> seconds."""
    try:
        return schema_duration(text, units="smhd").total_seconds()
    except ValueError as exc:
        raise ConfigError(str(exc), remedy="use e.g. 30m, 1h or 7d") from None


def registry_path(data_dir: Path) -> Path:
    return data_dir / "registry.db"


def init_collector(
    data_dir: Path,
    *,
    ca_cert: Path | None = None,
    ca_key: Path | None = None,
    tls_names: tuple[str, ...] = (),
) -> TlsFiles:
    """Create the data dir, CA (or install the given one), server certificate and registry."""
    if (ca_cert is None) != (ca_key is None):
        raise ConfigError("give both --ca-cert and --ca-key, or neither")
    given = (ca_cert, ca_key) if ca_cert is not None and ca_key is not None else None
    if given is not None and (data_dir / "ca.pem").exists():
        raise ConfigError(f"{data_dir} already has a CA", remedy="use a fresh --data-dir")
    files = ensure_tls(data_dir, tls_names, given_ca=given)
    Registry(registry_path(data_dir)).close()
    return files


def create_token(data_dir: Path, *, ttl: str = "1h", uses: int = 1, zone: str | None = None) -> str:
    registry = Registry(registry_path(data_dir))
    try:
        return registry.create_token(ttl=parse_duration(ttl), uses=uses, zone=zone)
    finally:
        registry.close()


def revoke_agent(data_dir: Path, agent_id: str, reason: str = "") -> AgentRecord:
    registry = Registry(registry_path(data_dir))
    try:
        return registry.revoke(agent_id, reason)
    finally:
        registry.close()


def list_agents(data_dir: Path) -> list[AgentRecord]:
    registry = Registry(registry_path(data_dir))
    try:
        return registry.agents()
    finally:
        registry.close()


def request_action(
    data_dir: Path,
    agent_id: str,
    action: str,
    args: dict[str, Any] | None = None,
    *,
    actor: str,
    alert_id: str = "",
) -> Command:
    """Queue a response action for an agent and audit the request (embedded SQLite store)."""
    from collector.store.sqlite import SqliteStore

    registry = Registry(registry_path(data_dir))
    store = SqliteStore(data_dir / "sekimori.db")
    try:
        return ActionQueue(registry, store).request(
            agent_id, action, args, actor=actor, alert_id=alert_id
        )
    finally:
        store.close()
        registry.close()
