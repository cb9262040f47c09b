"""``sekimori up``: a collector on the embedded store plus a local agent, on one machine.

The agent runs as its own process (``python -m agents``), exactly as it would on a staff PC,
so a slow collector never delays the process-connector reader and the agent keeps its spool
if the collector stops first.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from agents.errors import PermissionDenied
from collector.service import Collector

log = logging.getLogger("sekimori.up")


@dataclass(frozen=True, slots=True)
class LocalAgent:
    process: subprocess.Popen[bytes]
    state_dir: Path
    log_path: Path

    def stop(self, timeout: float = 10.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "agent did not stop in %.0fs; killing pid %d", timeout, self.process.pid
                )
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def agent_command(collector: Collector, state_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "agents",
        "--collector",
        collector.url,
        "--ca",
        str(collector.tls.ca_cert),
        "--token-file",
        str(collector.config.token_path),
        "--state-dir",
        str(state_dir),
    ]


def start_local_agent(collector: Collector) -> LocalAgent:
    if os.geteuid() != 0:
        raise PermissionDenied(
            "the local agent needs root for the kernel's netlink process connector",
            remedy="run sekimori up as root, or use --no-agent and run agents elsewhere",
        )
    state_dir = collector.config.data_dir / "agent"
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = collector.config.data_dir / "agent.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            agent_command(collector, state_dir),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return LocalAgent(process, state_dir, log_path)
