"""``python -m collector.lab.collector_proc --config FILE``: the lab's collector process.

The lab session starts it inside the collector's namespace (``ip netns exec skm-coll ...``).
It builds a :class:`~collector.service.CollectorConfig` from the lab's JSON config (listen
address, data dir, zones file, lab-speed analytics settings) and runs a
:class:`~collector.service.CollectorThread` until SIGTERM. It writes ``<data_dir>/ready`` once
it listens, so the session (in another namespace) knows without connecting.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from agents.errors import ConfigError, SekimoriError
from collector.analytics.config import AnalyticsConfig, BeaconThresholds, DnsTunnelThresholds
from collector.service import CollectorConfig, CollectorThread, build_collector

log = logging.getLogger("sekimori.lab.collector")
READY_FILE = "ready"


@dataclass(frozen=True, slots=True, kw_only=True)
class LabCollectorSettings:
    """What the session writes to the collector's JSON config."""

    data_dir: Path
    host: str
    port: int = 8443
    alert_window: float = 30.0  # seconds: separate alerts per scenario run
    analytics: Mapping[str, Any] | None = None  # AnalyticsConfig overrides (lab speed)

    def to_json(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "host": self.host,
            "port": self.port,
            "alert_window": self.alert_window,
            "analytics": dict(self.analytics or {}),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> LabCollectorSettings:
        try:
            return cls(
                data_dir=Path(raw["data_dir"]),
                host=str(raw["host"]),
                port=int(raw["port"]),
                alert_window=float(raw["alert_window"]),
                analytics=dict(raw.get("analytics") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"bad lab collector config: {exc}") from exc


LAB_ANALYTICS: Mapping[str, Any] = {
    "interval": 2.0,
    "window": 60.0,
    "beacon": {"min_connections": 6},
    "dns": {"min_unique_subdomains": 30},
}


def analytics_config(raw: Mapping[str, Any]) -> AnalyticsConfig:
    """Lab-speed analytics: a two-second interval and small minimum counts."""
    merged = {**LAB_ANALYTICS, **raw}
    return AnalyticsConfig(
        enabled=bool(merged.get("enabled", True)),
        interval=float(merged["interval"]),
        window=timedelta(seconds=float(merged["window"])),
        beacon=BeaconThresholds(**dict(merged["beacon"])),
        dns=DnsTunnelThresholds(**dict(merged["dns"])),
    )


def collector_config(settings: LabCollectorSettings) -> CollectorConfig:
    return CollectorConfig(
        data_dir=settings.data_dir,
        host=settings.host,
        port=settings.port,
        zones_path=settings.data_dir / "zones.yaml",
        alert_window=timedelta(seconds=settings.alert_window),
        tls_names=(settings.host,),
        analytics=analytics_config(settings.analytics or {}),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m collector.lab.collector_proc")
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    try:
        settings = LabCollectorSettings.from_json(json.loads(args.config.read_text("utf-8")))
        server = CollectorThread(build_collector(collector_config(settings)))
        server.start()
    except (OSError, ValueError, TypeError, SekimoriError) as exc:
        sys.stderr.write(f"error: lab collector: {exc}\n")
        return 2
    ready = settings.data_dir / READY_FILE
    ready.write_text(f"https://{settings.host}:{settings.port}\n", encoding="utf-8")
    log.info("lab collector listening on %s:%d", settings.host, settings.port)
    try:
        stop.wait()
    finally:
        ready.unlink(missing_ok=True)
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
