"""Start, enroll, check and stop the lab's processes (each recorded in the state file).

Processes run in their own session (they outlive ``lab up``), log to ``<data_dir>/logs``, and
are stopped by pid only while ``/proc/<pid>/cmdline`` still shows the recorded command, so a
recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agents.errors import ConfigError
from collector.lab.netns import in_ns
from collector.lab.state import LabProcess, LabState
from collector.registry import Registry

ENROLL_TIMEOUT = 60.0
STOP_GRACE = 10.0


def python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def log_path(state: LabState, name: str) -> Path:
    logs = state.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / (name.replace(":", "-") + ".log")


def start(state: LabState, name: str, namespace: str, argv: Sequence[str]) -> LabProcess:
    """Run ``argv`` inside ``namespace`` (or, for ``--netns`` agents, from here)."""
    full = (
        list(argv) if argv[:1] == [sys.executable] and "--netns" in argv else in_ns(namespace, argv)
    )
    path = log_path(state, name)
    with open(path, "ab") as log:
        process = subprocess.Popen(
            full,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    record = LabProcess(
        name=name, namespace=namespace, pid=process.pid, argv=tuple(full), log=str(path)
    )
    state.processes.append(record)
    state.save()
    return record


def _expected_cmdline(argv: Sequence[str]) -> list[str]:
    """``ip netns exec NS prog ...`` execs ``prog``: that is what /proc shows afterwards."""
    if list(argv[:3]) == ["ip", "netns", "exec"]:
        return list(argv[4:])
    return list(argv)


def is_running(process: LabProcess) -> bool:
    try:
        raw = Path(f"/proc/{process.pid}/cmdline").read_bytes()
    except OSError:
        return False
    if not raw:
        # Empty: a zombie, or a process in the middle of execve (the new image's argv is not
        # mapped yet; Popen returns right then, so a check just after a start can see it).
        try:
            reaped, _ = os.waitpid(process.pid, os.WNOHANG)
        except ChildProcessError:  # not our child: its identity cannot be confirmed
            return False
        return reaped == 0  # 0: still running
    cmdline = raw.rstrip(b"\0").decode(errors="replace").split("\0")
    return cmdline in (_expected_cmdline(process.argv), list(process.argv))


def dead(state: LabState) -> list[str]:
    return [p.name for p in state.processes if not is_running(p)]


def check_alive(state: LabState) -> None:
    gone = dead(state)
    if gone:
        first = state.process(gone[0])
        tail = ""
        if first is not None and Path(first.log).exists():
            tail = Path(first.log).read_text(errors="replace")[-1500:]
        raise ConfigError(
            f"lab process stopped: {', '.join(gone)}\n{tail}",
            remedy=f"see the logs in {state.data_dir / 'logs'}",
        )


def wait_file(state: LabState, path: Path, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        check_alive(state)
        if time.monotonic() > deadline:
            raise ConfigError(f"the lab {what} did not start in {timeout:.0f}s")
        time.sleep(0.1)


def agent_dir(state: LabState, name: str) -> Path:
    return state.data_dir / "agents" / name


def enroll_agent(state: LabState, name: str, namespace: str) -> None:
    """A one-time token from the registry, then ``python -m agents enroll`` inside the host's
    namespace, exactly as an operator enrolls a staff PC."""
    registry = Registry(state.data_dir / "registry.db")
    try:
        token = registry.create_token(ttl=300, uses=1, label=f"lab {name}")
    finally:
        registry.close()
    argv = python(
        "agents",
        "enroll",
        state.collector_url,
        "-",
        "--ca",
        str(state.data_dir / "ca.pem"),
        "--state-dir",
        str(agent_dir(state, name)),
        "--name",
        name,
    )
    done = subprocess.run(
        in_ns(namespace, argv),
        input=token + "\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=ENROLL_TIMEOUT,
    )
    if done.returncode != 0:
        raise ConfigError(f"lab agent {name} did not enroll: {done.stderr.strip()}")


def start_agent(
    state: LabState, name: str, namespace: str, sensor_interfaces: Sequence[str] = ()
) -> LabProcess:
    argv = python(
        "agents",
        "--netns",
        namespace,
        "--state-dir",
        str(agent_dir(state, name)),
        "--name",
        name,
        "--heartbeat-interval",
        "5",
        "--network-interval",
        "0.25",
    )
    if sensor_interfaces:
        for interface in sensor_interfaces:
            argv += ["--sensor-interface", interface]
        argv += ["--no-process-events", "--no-socket-events", "--flow-idle-timeout", "5"]
    return start(state, f"agent:{name}", namespace, argv)


def stop_all(state: LabState) -> None:
    """SIGTERM every recorded process that still runs its command (newest first), wait, then
    SIGKILL what is left."""
    victims = [p for p in reversed(state.processes) if is_running(p)]
    for process in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    while victims and time.monotonic() < deadline:
        victims = [p for p in victims if is_running(p)]
        time.sleep(0.05)
    for process in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGKILL)
