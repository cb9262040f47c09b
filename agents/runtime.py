"""The agent runtime: sources in threads -> writer (events, spool) -> shipper thread.

Threads: one pump per source (records -> bounded queue; a full queue blocks the pump, which
turns into counted kernel overruns rather than silent loss), one writer (builds events, appends
them to the spool in batches so one fsync covers many events, emits heartbeats), one shipper.
``stop`` ends everything: pumps stop, the writer drains the queue, the spool is synced and
shipping is tried for ``drain_timeout`` seconds. Signal handling is the caller's job
(:func:`install_signal_handlers` helps).

With ``config.netns`` :func:`run_agent` opens the process-connector socket (it only works in
the initial network namespace), then moves the still single-threaded process into the
namespace, so every thread and every later socket (shipper, control, /proc/self/net, the
packet sensor) lives there; see :mod:`agents.netns`.
"""

from __future__ import annotations

import importlib
import logging
import os
import queue
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from types import FrameType
from typing import Any

from agents import netns
from agents.config import AgentConfig, load_or_create_agent_id, prepare_state_dir
from agents.control import Control
from agents.errors import ConfigError, TransportError
from agents.events import EventBuilder
from agents.hostinfo import detect
from agents.identity import load_identity
from agents.procfs import ProcFS
from agents.response import ResponseExecutor
from agents.shipper import Shipper
from agents.sources.base import Record, Source, SourceGap
from agents.sources.netlink import ConnectorSocket, PreopenedConnector
from agents.sources.proc_connector import ProcConnectorSource
from agents.sources.sockets import SocketsSource
from agents.spool import Spool

log = logging.getLogger(__name__)

QUEUE_SIZE = 100_000
WRITE_BATCH = 1000
RESTART_DELAY = 5.0


class Agent:
    """The assembled agent; :func:`run_agent` is the usual entry point."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        switched: netns.Switched | None = None,
        connector: ConnectorSocket | None = None,
    ) -> None:
        """``switched``: the namespace :func:`run_agent` moved into; ``connector``: the
        process-connector socket it opened before (the process source's first socket)."""
        self.config = config
        self._connector = (
            PreopenedConnector(connector, partial(switched.in_origin, ConnectorSocket))
            if connector is not None and switched is not None
            else None
        )
        prepare_state_dir(config.state_dir)
        self.agent_id = load_or_create_agent_id(config.state_dir)
        self.procfs = ProcFS(config.proc_root)
        self.host = detect(config.name, config.proc_root)
        self.builder = EventBuilder(
            agent_id=self.agent_id,
            agent_name=self.host.name,
            host=self.host,
            user_resolver=self.procfs.user_name,
        )
        self.spool = Spool(
            config.state_dir / "spool",
            make_gap=self.builder.spool_gap,
            max_bytes=config.spool_max_bytes,
            segment_bytes=config.spool_segment_bytes,
            fsync_interval=config.fsync_interval,
        )
        self.identity = load_identity(config.state_dir)
        shipping = config.shipper_config()
        if self.identity is not None and config.client_cert is None:  # enrolled: mutual TLS
            shipping = replace(
                shipping,
                client_cert=self.identity.cert_file,
                ca_file=config.ca_file or self.identity.ca_file,
            )
        self.shipper = Shipper(
            self.spool, shipping, agent_id=self.agent_id, agent_name=self.host.name
        )
        self.control = (
            Control(
                self.identity,
                config.state_dir,
                ResponseExecutor(config.allowed_actions, config.collector_url),
                on_new_context=self.shipper.set_context,
            )
            if self.identity is not None
            else None
        )
        own = os.getpid()
        self.proc_source = (
            ProcConnectorSource(
                self.procfs,
                own_pid=own,
                realtime=config.realtime_reader,
                socket_factory=self._connector or ConnectorSocket,
                netns=switched.target if switched is not None else None,
            )
            if config.process
            else None
        )
        self.net_source = (
            SocketsSource(self.procfs, interval=config.network_interval, own_pid=own)
            if config.network
            else None
        )
        self.sensor = sensor_source(config) if config.sensor_interfaces else None
        self.queue: queue.Queue[Record] = queue.Queue(QUEUE_SIZE)
        self.written = 0
        self.data_ready = threading.Event()  # set by the writer, wakes an idle shipper
        self.build_errors = 0

    @property
    def sources(self) -> list[Source]:
        return [s for s in (self.proc_source, self.net_source, self.sensor) if s is not None]

    def heartbeat_message(self) -> str:
        stats = self.spool.stats
        overruns = self.proc_source.overruns if self.proc_source else 0
        where = ""
        if self.config.netns is not None:
            other = self.proc_source.tracker.filtered if self.proc_source else 0
            where = f" netns={self.config.netns} other_netns_execs={other}"
        sensor = self.sensor
        if sensor is not None:  # the network sensor's counters (NetSensorSource attributes)
            where += (
                f" sensor_packets={getattr(sensor, 'packets', 0)}"
                f" sensor_kernel_drops={getattr(sensor, 'kernel_drops', 0)}"
                f" sensor_flow_evictions={getattr(sensor, 'evictions', 0)}"
            )
        return (
            f"heartbeat: pending={self.spool.pending} next_seq={self.spool.next_seq} "
            f"acked_seq={self.spool.acked_seq} dropped={stats.dropped} "
            f"corrupt_regions={stats.corrupt_regions} netlink_overruns={overruns} "
            f"shipped={self.shipper.shipped}{where}"
        )

    # -- threads -------------------------------------------------------------------------------
    def pump(self, source: Source, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                for record in source.records(stop):
                    self._put(record, stop)
                return
            except Exception:
                log.exception("source %s failed; restarting in %.0f s", source.name, RESTART_DELAY)
                gap = SourceGap(
                    timestamp=time.time(), source=source.name, reason="source_error", count=1
                )
                self._put(gap, stop)
                stop.wait(RESTART_DELAY)

    def _put(self, record: Record, stop: threading.Event) -> None:
        while True:
            try:
                self.queue.put(record, timeout=0.2)
                return
            except queue.Full:
                if stop.is_set():
                    log.error("agent stopping with a full queue; record lost: %r", record)  # noqa: TRY400
                    return

    def write_loop(self, pumps_done: threading.Event) -> None:
        next_beat = time.monotonic() + self.config.heartbeat_interval
        while True:
            batch: list[Record] = []
            try:
                batch.append(self.queue.get(timeout=0.2))
                while len(batch) < WRITE_BATCH:
                    batch.append(self.queue.get_nowait())
            except queue.Empty:
                pass
            events = self._build(batch)
            if time.monotonic() >= next_beat:
                events.append(self.builder.heartbeat(self.heartbeat_message()))
                next_beat = time.monotonic() + self.config.heartbeat_interval
            while events:
                start = self.spool.next_seq
                try:
                    self.spool.append(events)
                except OSError:  # disk full or failing: keep the unwritten events, retry
                    log.exception("spool append failed; retrying in 1 s")
                    done = max(0, self.spool.next_seq - start)
                    self.written += min(done, len(events))
                    events = events[done:]
                    time.sleep(1.0)
                    continue
                self.written += len(events)
                self.data_ready.set()
                break
            if pumps_done.is_set() and self.queue.empty():
                return

    def _build(self, batch: list[Record]) -> list[dict[str, Any]]:
        events = []
        for record in batch:
            try:
                events.append(self.builder.build(record))
            except Exception:  # a bug must not stop the writer; it is logged loudly
                log.exception("could not build an event from %r", record)
                self.build_errors += 1
        return events

    # -- whole runs ----------------------------------------------------------------------------
    def run_once(self) -> None:
        events = [self.builder.heartbeat("agent run --once")]
        if self.net_source is not None:
            self.net_source.check_compatible()
            events.extend(self.builder.build(r) for r in self.net_source.poll())
        self.spool.append(events)
        try:
            if not self.shipper.drain(max(self.config.drain_timeout, 1.0)):
                raise TransportError(
                    f"{self.spool.pending} event(s) not delivered to {self.config.collector_url}",
                    remedy="check that the collector runs and --ca is its ca.pem; "
                    "the events stay in the spool and are sent by the next run",
                )
        finally:
            self.close()

    def run(self, stop: threading.Event) -> None:
        for source in self.sources:
            source.check_compatible()
        self.spool.append([self.builder.heartbeat("agent started")])
        pumps_stop = threading.Event()
        pumps = [
            threading.Thread(
                target=self.pump, args=(s, pumps_stop), name=f"src-{s.name}", daemon=True
            )
            for s in self.sources
        ]
        pumps_done = threading.Event()
        writer = threading.Thread(
            target=self.write_loop, args=(pumps_done,), name="spool-writer", daemon=True
        )
        ship_stop = threading.Event()
        shipper = threading.Thread(
            target=self.shipper.run,
            args=(ship_stop,),
            kwargs={"wake": self.data_ready},
            name="shipper",
            daemon=True,
        )
        control_stop = threading.Event()
        controls = (
            [
                threading.Thread(
                    target=self.control.run,
                    args=(control_stop, self.config.control_interval),
                    name="control",
                    daemon=True,
                )
            ]
            if self.control is not None
            else []
        )
        for thread in (*pumps, writer, shipper, *controls):
            thread.start()
        try:
            stop.wait()
        finally:
            control_stop.set()
            pumps_stop.set()
            for thread in pumps:
                thread.join(timeout=5.0)
            pumps_done.set()
            writer.join(timeout=10.0)
            ship_stop.set()
            self.data_ready.set()  # end an idle pause now
            shipper.join(timeout=self.config.drain_timeout + 35.0)
            self.spool.sync()
            drained = not shipper.is_alive() and self.shipper.drain(self.config.drain_timeout)
            log.info(
                "agent stopped; %s",
                "spool empty"
                if drained
                else f"{self.spool.pending} event(s) kept in the spool for the next start",
            )
            self.close()

    def close(self) -> None:
        if self._connector is not None:
            self._connector.close()
        self.shipper.close()
        self.spool.close()


def sensor_source(config: AgentConfig) -> Source:
    """The packet sensor, imported only when asked for (it loads scapy); by name, so this
    module neither needs nor loads it otherwise."""
    try:
        module = importlib.import_module("agents.sources.netsensor")
    except ImportError as exc:
        raise ConfigError(
            f"the network sensor is not available: {exc}",
            remedy="install sekimori with scapy, or drop --sensor-interface",
        ) from exc
    make: Callable[..., Source] = module.NetSensorSource
    return make(
        config.sensor_interfaces,
        active_timeout=config.flow_active_timeout,
        idle_timeout=config.flow_idle_timeout,
    )


def run_agent(config: AgentConfig, stop: threading.Event) -> None:
    """Run the agent until ``stop`` is set (or, with ``config.once``, one pass).

    Raises a :class:`~agents.errors.SekimoriError` subclass for configuration, privilege and
    (in ``once`` mode) delivery problems. With ``config.netns`` it must be called on the main
    thread before any other thread starts (the whole process changes namespace).
    """
    switched = connector = None
    try:
        if config.netns is not None:
            if config.process and not config.once:
                connector = ConnectorSocket()  # needs the initial network namespace
            switched = netns.enter(config.netns)
            log.info("agent runs in network namespace %s", config.netns)
        agent = Agent(config, switched=switched, connector=connector)
    except BaseException:
        if connector is not None:
            connector.close()
        if switched is not None:
            switched.close()
        raise
    try:
        if config.once:
            agent.run_once()
        else:
            agent.run(stop)
    finally:
        if switched is not None:
            switched.close()


def install_signal_handlers(stop: threading.Event) -> dict[int, int]:
    """SIGINT/SIGTERM set ``stop`` (main thread only). Returns {signal: times received}."""
    received: dict[int, int] = {}

    def handler(signum: int, _frame: FrameType | None) -> None:
        received[signum] = received.get(signum, 0) + 1
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    return received
