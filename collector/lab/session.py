"""``lab up`` / ``lab down`` / ``lab status``: build the lab, start its processes, remove it.

``up``: network (:func:`collector.lab.netns.build`), a fresh lab data dir with zones.yaml from
the topology and a TLS certificate naming the collector's lab address, the collector inside
its namespace, the service processes (resolver, NTP, proxy, web, business apps), then one
enrolled agent per ``agent: true`` host (``python -m agents --netns skm-<host>``) and a
sensor-only agent in the router. Services start before agents so their listeners are the
agents' start-up inventory, not "new listeners". Every step is recorded in the state file.

``down``: stop the recorded pids (only if each still runs the recorded command), then remove
the topology's namespaces (:func:`collector.lab.netns.teardown`); nothing else is touched.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from agents.errors import ConfigError
from collector.lab import launch
from collector.lab.collector_proc import READY_FILE, LabCollectorSettings
from collector.lab.netns import build, lab_namespaces, ns_name, teardown
from collector.lab.state import MARKER, LabState, load_state
from collector.lab.topology import Topology, default_topology, load_topology
from collector.models import EventQuery
from collector.store.sqlite import SqliteStore
from collector.tls import ensure_tls

log = logging.getLogger("sekimori.lab")
COLLECTOR_PORT = 8443
SENSOR_HOST = "router"
SENSOR_SEGMENTS = ("internet",)  # bridges the sensor captures on (one copy per packet)


def resolve_topology(path: Path | None, state: LabState | None = None) -> Topology:
    if path is not None:
        return load_topology(path)
    if state is not None and state.topology_file:
        return load_topology(Path(state.topology_file))
    return default_topology()


def collector_host(topology: Topology) -> str:
    hosts = [h for h in topology.hosts if "collector" in h.roles]
    if len(hosts) != 1:
        raise ConfigError("the lab topology needs exactly one host with the 'collector' role")
    return hosts[0].name


def dns_records(topology: Topology) -> dict[str, str]:
    records = {f"{h.name}.lab.test": h.address for h in topology.hosts}
    for host in topology.hosts:
        if host.segment == "outside":
            records.update({"www.example.com": host.address, "deb.example.com": host.address})
    return records


def services_for(topology: Topology) -> dict[str, list[str]]:
    """host -> service kinds (see collector.lab.services)."""
    services: dict[str, list[str]] = {}
    for host in topology.hosts:
        kinds = []
        if "dns_resolvers" in host.roles:
            kinds += ["dns", "ntp"]
        if "security_cloud_proxy" in host.roles:
            kinds.append("proxy")
        if host.segment == "outside":
            kinds += ["web", "beacon", "catcher"]
        if host.segment in ("lgwan", "mynumber"):
            kinds.append("app")
        if kinds:
            services[host.name] = kinds
    return services


@dataclass(frozen=True, slots=True)
class Lab:
    """A running lab: its topology and state (what the scenarios and the test runner use)."""

    topology: Topology
    state: LabState

    @property
    def data_dir(self) -> Path:
        return self.state.data_dir

    def store(self) -> SqliteStore:
        return SqliteStore(self.data_dir / "sekimori.db")


def up(data_dir: Path, topology_file: Path | None = None, timeout: float = 60.0) -> Lab:
    """Build the lab from scratch (a previous or crashed lab is removed first)."""
    down(data_dir, topology_file)
    topology = resolve_topology(topology_file)
    _fresh_data_dir(data_dir)
    state = LabState(
        data_dir=data_dir,
        topology_file=str(topology_file.resolve()) if topology_file else None,
        started=time.time(),
    )
    state.save()
    state.namespaces = build(topology)
    state.save()
    try:
        _start_everything(topology, state, timeout)
    except BaseException:
        down(data_dir, topology_file)
        raise
    state.ready = True
    state.save()
    return Lab(topology, state)


def _fresh_data_dir(data_dir: Path) -> None:
    if data_dir.exists() and any(data_dir.iterdir()):
        if not (data_dir / MARKER).exists():
            raise ConfigError(
                f"{data_dir} exists and was not made by the lab",
                remedy="pass an empty or new --data-dir",
            )
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / MARKER).write_text("made by `sekimori lab up`; removed by the next up\n")


def _start_everything(topology: Topology, state: LabState, timeout: float) -> None:
    data_dir = state.data_dir
    coll = topology.host(collector_host(topology))
    (data_dir / "zones.yaml").write_text(
        yaml.safe_dump(topology.zones_document(), allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    ensure_tls(data_dir, (coll.address,))
    settings = LabCollectorSettings(data_dir=data_dir, host=coll.address, port=COLLECTOR_PORT)
    config_path = data_dir / "collector.json"
    launch.write_json(config_path, settings.to_json())
    state.collector_url = f"https://{coll.address}:{COLLECTOR_PORT}"
    launch.start(
        state,
        "collector",
        ns_name(coll.name),
        launch.python("collector.lab.collector_proc", "--config", str(config_path)),
    )
    launch.wait_file(state, data_dir / READY_FILE, "collector", timeout)
    records = [f"--record={name}={address}" for name, address in dns_records(topology).items()]
    for host_name, kinds in services_for(topology).items():
        host = topology.host(host_name)
        argv = launch.python(
            "collector.lab.services", ",".join(kinds), "--bind", host.address, *records
        )
        launch.start(state, f"service:{host_name}", ns_name(host_name), argv)
    time.sleep(0.5)  # listeners bound before the agents take their start-up inventory
    agents = [h.name for h in topology.hosts if h.agent]
    for name in agents:
        launch.enroll_agent(state, name, ns_name(name))
        launch.start_agent(state, name, ns_name(name))
    launch.enroll_agent(state, SENSOR_HOST, "skm-router")
    bridges = [f"br-{s}" for s in SENSOR_SEGMENTS if any(x.name == s for x in topology.segments)]
    launch.start_agent(state, SENSOR_HOST, "skm-router", sensor_interfaces=bridges)
    wait_for_hosts(state, [*agents, SENSOR_HOST], timeout)


def wait_for_hosts(state: LabState, hosts: list[str], timeout: float) -> None:
    """Until every agent's first events are stored (it enrolled, connected and shipped)."""
    deadline = time.monotonic() + timeout
    pending = list(hosts)
    while pending:
        launch.check_alive(state)
        path = state.data_dir / "sekimori.db"
        if path.exists():
            store = SqliteStore(path)
            try:
                pending = [
                    h for h in pending if not store.query_events(EventQuery(host=h, limit=1))
                ]
            finally:
                store.close()
        if not pending:
            return
        if time.monotonic() > deadline:
            raise ConfigError(
                f"lab agents sent nothing in {timeout:.0f}s: {', '.join(pending)}",
                remedy=f"see the logs in {state.data_dir / 'logs'}",
            )
        time.sleep(0.3)


def down(data_dir: Path, topology_file: Path | None = None) -> list[str]:
    """Stop what the state file records and remove the lab's namespaces. Returns them."""
    state = load_state(data_dir)
    topology = resolve_topology(topology_file, state)
    if state is not None:
        launch.stop_all(state)
    removed = teardown(topology, state.namespaces if state is not None else ())
    if state is not None:
        state.path.unlink(missing_ok=True)
    return removed


def running(data_dir: Path) -> Lab | None:
    state = load_state(data_dir)
    if state is None or not state.ready:
        return None
    topology = resolve_topology(None, state)
    if launch.dead(state) or set(lab_namespaces(state.namespaces)) != set(state.namespaces):
        return None
    return Lab(topology, state)


def status(data_dir: Path) -> dict[str, Any]:
    state = load_state(data_dir)
    if state is None:
        return {"up": False, "data_dir": str(data_dir), "processes": [], "namespaces": []}
    dead = set(launch.dead(state))
    present = set(lab_namespaces(state.namespaces))
    return {
        "up": state.ready and not dead and present == set(state.namespaces),
        "data_dir": str(data_dir),
        "collector": state.collector_url,
        "namespaces": [{"name": n, "present": n in present} for n in state.namespaces],
        "processes": [
            {"name": p.name, "namespace": p.namespace, "pid": p.pid, "alive": p.name not in dead}
            for p in state.processes
        ],
    }
