"""The lab's state file: what ``lab up`` started, so ``lab down``/``status`` find it again.

``<data_dir>/lab-state.json`` records the topology file, the namespaces, the collector URL and
every process (name, namespace, pid, command, log). ``lab down`` stops exactly those pids and
removes exactly those namespaces. The file is written atomically after each step of ``up``,
so a crash half-way still leaves a record of what exists.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from agents.errors import ConfigError

STATE_FILE: Final = "lab-state.json"
MARKER: Final = ".sekimori-lab"  # a data dir with this file was made by the lab (safe to wipe)
DEFAULT_DATA_DIR: Final = Path("/var/lib/sekimori/lab")


@dataclass(frozen=True, slots=True, kw_only=True)
class LabProcess:
    name: str  # "collector", "agent:pc1", "service:dns", ...
    namespace: str
    pid: int
    argv: tuple[str, ...]
    log: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "pid": self.pid,
            "argv": list(self.argv),
            "log": self.log,
        }


@dataclass(slots=True, kw_only=True)
class LabState:
    data_dir: Path
    topology_file: str | None = None
    collector_url: str = ""
    namespaces: list[str] = field(default_factory=list)
    processes: list[LabProcess] = field(default_factory=list)
    started: float = 0.0
    ready: bool = False

    @property
    def path(self) -> Path:
        return self.data_dir / STATE_FILE

    def process(self, name: str) -> LabProcess | None:
        return next((p for p in self.processes if p.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "data_dir": str(self.data_dir),
            "topology_file": self.topology_file,
            "collector_url": self.collector_url,
            "namespaces": self.namespaces,
            "processes": [p.to_json() for p in self.processes],
            "started": self.started,
            "ready": self.ready,
        }

    def save(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.replace(self.path)


def load_state(data_dir: Path) -> LabState | None:
    path = data_dir / STATE_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"unreadable lab state: {exc}", source=str(path), remedy="remove the file by hand"
        ) from exc
    try:
        return LabState(
            data_dir=Path(raw["data_dir"]),
            topology_file=raw.get("topology_file"),
            collector_url=str(raw.get("collector_url", "")),
            namespaces=[str(n) for n in raw.get("namespaces", [])],
            processes=[
                LabProcess(
                    name=str(p["name"]),
                    namespace=str(p["namespace"]),
                    pid=int(p["pid"]),
                    argv=tuple(str(a) for a in p["argv"]),
                    log=str(p["log"]),
                )
                for p in raw.get("processes", [])
            ],
            started=float(raw.get("started", 0.0)),
            ready=bool(raw.get("ready", False)),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"bad lab state: {exc}", source=str(path)) from exc
