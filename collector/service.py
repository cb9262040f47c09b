"""Assemble and run a collector from a ``CollectorConfig`` (``sekimori up``, ``collector run``)."""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from agents.errors import ConfigError
from collector.alerts import AlertManager
from collector.pipeline import IngestPipeline
from collector.server import ensure_token, make_app, serve
from collector.store.sqlite import SqliteStore
from collector.tls import TlsFiles, ensure_tls, server_context
from collector.validate import Limits
from collector.zones import ZoneMap, example_zones_path, load_zones
from detections import RuleSet, default_rules_dir, load_rules

log = logging.getLogger("sekimori.collector")


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectorConfig:
    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8443
    zones_path: Path | None = None  # default: <data_dir>/zones.yaml, created from the example
    rule_paths: tuple[Path, ...] = field(default_factory=tuple)  # default: shipped rules
    alert_window: timedelta = timedelta(minutes=10)
    limits: Limits = field(default_factory=Limits)
    tls_names: tuple[str, ...] = ()

    @property
    def store_path(self) -> Path:
        return self.data_dir / "sekimori.db"

    @property
    def token_path(self) -> Path:
        return self.data_dir / "ingest.token"


@dataclass(frozen=True, slots=True)
class Collector:
    config: CollectorConfig
    store: SqliteStore
    zones: ZoneMap
    rules: RuleSet
    pipeline: IngestPipeline
    tls: TlsFiles
    token: str

    @property
    def url(self) -> str:
        host = f"[{self.config.host}]" if ":" in self.config.host else self.config.host
        return f"https://{host}:{self.config.port}"


def resolve_zones(config: CollectorConfig) -> Path:
    if config.zones_path is not None:
        if not config.zones_path.exists():
            raise ConfigError("zones file not found", source=str(config.zones_path))
        return config.zones_path
    path = config.data_dir / "zones.yaml"
    if not path.exists():
        config.data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(example_zones_path(), path)
        log.info("wrote example zones to %s: edit it to describe your segments", path)
    return path


def build_collector(config: CollectorConfig) -> Collector:
    config.data_dir.mkdir(parents=True, exist_ok=True)
    zones = load_zones(resolve_zones(config))
    rules = load_rules(list(config.rule_paths) or [default_rules_dir()])
    for error in rules.errors:
        log.error("rule not loaded: %s", error)
    store = SqliteStore(config.store_path)
    pipeline = IngestPipeline(
        store, zones, rules, AlertManager(store, config.alert_window), config.limits
    )
    tls = ensure_tls(config.data_dir, config.tls_names)
    token = ensure_token(config.token_path)
    return Collector(config, store, zones, rules, pipeline, tls, token)


def run_collector(
    collector: Collector,
    stop: asyncio.Event | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve until ``stop`` is set (or forever); blocks the calling thread."""

    async def main() -> None:
        stop_event = stop or asyncio.Event()
        app = make_app(collector.pipeline, collector.token)
        context = server_context(collector.tls)
        task = asyncio.create_task(
            serve(app, collector.config.host, collector.config.port, context, stop_event)
        )
        await asyncio.sleep(0.05)
        if on_ready is not None:
            on_ready()
        await task

    try:
        asyncio.run(main())
    finally:
        collector.store.close()
