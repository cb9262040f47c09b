"""Assemble and run a collector from a ``CollectorConfig`` (``sekimori up``, ``collector run``)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agents.errors import ConfigError, SekimoriError
from collector.actions import ActionQueue
from collector.agent_api import AgentAuth
from collector.alerts import AlertManager
from collector.analytics.config import AnalyticsConfig
from collector.authority import CLIENT_VALIDITY, Authority
from collector.pipeline import IngestPipeline
from collector.registry import Registry
from collector.server import make_app, serve
from collector.silence import DEFAULT_THRESHOLD, check_silence
from collector.store import open_store
from collector.store.base import Store
from collector.store.sqlite import SqliteStore
from collector.tls import TlsFiles, ensure_tls, server_context
from collector.validate import Limits
from collector.zones import ZoneMap, example_zones_path, load_zones
from detections import RuleSet, default_rules_dir, load_rules

if TYPE_CHECKING:
    from collector.analytics.runner import AnalyticsRunner

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
    # None: the SQLite file in data_dir; else a store URL for collector.store.open_store
    # (opensearch+https://host:9200, ...) with its options (ca_certs, api_key, basic_auth...).
    store_url: str | None = None
    store_options: dict[str, Any] = field(default_factory=dict)
    client_validity: timedelta = CLIENT_VALIDITY  # agent certificate lifetime
    revocation_refresh: float = 1.0  # seconds between registry re-reads (revocation latency)
    silence_threshold: timedelta = DEFAULT_THRESHOLD  # agent silence alert after this
    silence_check_interval: float = 30.0  # seconds between silence checks
    # beacon / DNS-tunnel scoring and scan correlations over the stored window (docs/analytics.md)
    analytics: AnalyticsConfig = field(default_factory=AnalyticsConfig)
    # ingest worker processes (parse, validate, enrich, match on every core:
    # collector/ingest_workers.py); 0 = all of it in the collector process
    ingest_workers: int = 0

    @property
    def store_path(self) -> Path:
        return self.data_dir / "sekimori.db"

    @property
    def registry_path(self) -> Path:
        """Agent registry (tokens, certs, revocations, sequence state): its own SQLite file."""
        return self.data_dir / "registry.db"


@dataclass(frozen=True, slots=True)
class Collector:
    config: CollectorConfig
    store: Store
    zones: ZoneMap
    rules: RuleSet
    pipeline: IngestPipeline
    tls: TlsFiles
    auth: AgentAuth

    @property
    def registry(self) -> Registry:
        return self.auth.registry

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
    store: Store = (
        open_store(config.store_url, **config.store_options)
        if config.store_url
        else SqliteStore(config.store_path)
    )
    pipeline = IngestPipeline(
        store,
        zones,
        rules,
        AlertManager(store, config.alert_window),
        config.limits,
        workers=config.ingest_workers,
    )
    tls = ensure_tls(config.data_dir, config.tls_names)
    registry = Registry(config.registry_path, refresh_interval=config.revocation_refresh)
    auth = AgentAuth(
        registry,
        Authority(tls, registry, config.client_validity),
        ActionQueue(registry, store),
    )
    return Collector(config, store, zones, rules, pipeline, tls, auth)


def _analytics_runner(collector: Collector) -> AnalyticsRunner:
    from collector.analytics.runner import AnalyticsRunner  # pandas: only when enabled

    return AnalyticsRunner(collector.store, collector.config.analytics, collector.rules)


class CollectorThread:
    """Runs a collector's HTTPS server in a background thread with its own event loop."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="collector", daemon=True)

    def _run(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            app = make_app(self.collector.pipeline, self.collector.auth)
            context = server_context(self.collector.tls)
            config = self.collector.config
            watchdog = asyncio.create_task(self._watch_silence())
            analytics = (
                asyncio.create_task(self._run_analytics()) if config.analytics.enabled else None
            )
            try:
                await serve(app, config.host, config.port, context, self._stop, self._ready)
            finally:
                watchdog.cancel()
                if analytics is not None:
                    analytics.cancel()

        try:
            asyncio.run(main())
        except (OSError, SekimoriError) as exc:  # surfaced to the caller by start()/wait()
            self._error = exc
            self._ready.set()

    async def _watch_silence(self) -> None:
        """Raise agent-silence alerts periodically (in a worker thread: the store blocks)."""
        config = self.collector.config
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(config.silence_check_interval)
            try:
                await loop.run_in_executor(
                    None,
                    partial(
                        check_silence,
                        self.collector.registry,
                        self.collector.store,
                        threshold=config.silence_threshold,
                    ),
                )
            except SekimoriError:
                log.exception("agent silence check failed; retrying at the next interval")

    async def _run_analytics(self) -> None:
        """Beacon, DNS-tunnel and scan analytics periodically (in a worker thread)."""
        settings = self.collector.config.analytics
        loop = asyncio.get_running_loop()
        # built in a worker thread too: importing pandas takes a moment the loop must not wait
        runner = await loop.run_in_executor(None, _analytics_runner, self.collector)
        while True:
            await asyncio.sleep(settings.interval)
            try:
                await loop.run_in_executor(None, runner.run)
            except Exception:  # logged with its traceback; the job must outlive one bad run
                log.exception("analytics run failed; retrying at the next interval")

    def start(self, timeout: float = 15.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise ConfigError("the collector did not start listening in time")
        if self._error is not None:
            config = self.collector.config
            raise ConfigError(
                f"collector cannot listen on {config.host}:{config.port}: {self._error}",
                remedy="choose another --port or stop what is using it",
            ) from self._error

    def wait(self) -> None:
        while self._thread.is_alive():
            self._thread.join(0.5)
        if self._error is not None:
            raise ConfigError(f"collector stopped: {self._error}") from self._error

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(15)
        self.collector.pipeline.close()
        self.collector.store.close()
        self.collector.registry.close()
