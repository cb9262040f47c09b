"""``sekimori demo``: a short, harmless simulated intrusion seen end to end.

A private collector (temporary data dir, loopback, free port) and a real agent process are
started; then real processes act out attack precursors. Nothing leaves the machine: the
"download" and the "reverse shell" target a loopback port nobody listens on, the decoded
payload is ``id``, and the credential read goes to /dev/null.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agents.errors import SekimoriError
from collector.local import LocalAgent, start_local_agent
from collector.models import Alert
from collector.service import CollectorConfig, CollectorThread, build_collector
from collector.store.base import Store


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    argv: tuple[str, ...]
    expect_title: str  # the rule title this step should raise


def _closed_loopback_port() -> int:
    """A loopback port that was free a moment ago (connections to it are refused until
    someone binds it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def demo_steps() -> list[Step]:
    port = _closed_loopback_port()
    fetch = "curl -s --max-time 2" if shutil.which("curl") else "wget -q -T 2 -O-"
    return [
        Step(
            "obfuscated command: base64-decoded payload piped to a shell",
            ("sh", "-c", "echo aWQ= | base64 -d | sh"),
            "Base64-Decoded Payload Executed by a Shell",
        ),
        Step(
            "download piped into a shell (loopback, refused)",
            ("sh", "-c", f"{fetch} http://127.0.0.1:{port}/install.sh | sh"),
            "Download Piped Into a Shell or Interpreter",
        ),
        Step(
            "reverse-shell one-liner (loopback, refused)",
            ("bash", "-c", f"bash -i >& /dev/tcp/127.0.0.1/{port} 0>&1"),
            "Reverse Shell Command Line",
        ),
        Step(
            "credential file read (output discarded)",
            ("cat", "/etc/shadow"),
            "Read or Copy of /etc/shadow",
        ),
    ]


def run_demo(
    data_dir: Path, say: Callable[[str], None], timeout: float = 20.0
) -> tuple[list[Step], list[Alert]]:
    """Run every step; return the steps and the alerts raised (waits up to ``timeout``)."""
    collector = build_collector(CollectorConfig(data_dir=data_dir, port=_closed_loopback_port()))
    server = CollectorThread(collector)
    server.start()
    agent: LocalAgent | None = None
    try:
        agent = start_local_agent(collector)
        _wait_for_agent(collector.store, agent, timeout)
        steps = demo_steps()
        for step in steps:
            say(f"running: {step.name}")
            subprocess.run(
                step.argv,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=10,
                check=False,
            )
        expected = {s.expect_title for s in steps}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alerts = collector.store.list_alerts(limit=100)
            if expected <= {a.title for a in alerts}:
                break
            time.sleep(0.2)
        return steps, collector.store.list_alerts(limit=100)
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


def _wait_for_agent(store: Store, agent: LocalAgent, timeout: float) -> None:
    """Wait until the agent's first events (its start-up socket snapshot, heartbeat) land."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if agent.process.poll() is not None:
            log = agent.log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
            raise SekimoriError(f"the demo agent exited early:\n{log}")
        if store.count_events() > 0:
            return
        time.sleep(0.1)
    raise SekimoriError("the demo agent sent nothing in time", remedy=f"see {agent.log_path}")
