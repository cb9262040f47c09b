"""``sekimori up``: a collector on the embedded store plus a local agent, on one machine.

The agent runs as its own process (``python -m agents``), exactly as it would on a staff PC,
so a slow collector never delays the process-connector reader and the agent keeps its spool
if the collector stops first. It enrolls like any other agent: a single-use token valid for
five minutes, a key pair and CSR made in ``<data_dir>/agent``, mutual TLS from then on (an
already enrolled state dir is reused).
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
from agents.identity import enroll, load_identity
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
        "--state-dir",
        str(state_dir),
    ]


def enroll_local_agent(collector: Collector, state_dir: Path) -> str:
    """Enroll ``state_dir`` with ``collector`` (running) unless it is enrolled; the agent id."""
    identity = load_identity(state_dir)
    if identity is None:
        token = collector.registry.create_token(ttl=300, uses=1, label="sekimori up")
        identity = enroll(collector.url, token, state_dir=state_dir, ca_file=collector.tls.ca_cert)
    return identity.agent_id


def start_local_agent(collector: Collector) -> LocalAgent:
    if os.geteuid() != 0:
        raise PermissionDenied(
            "the local agent needs root for the kernel's netlink process connector",
            remedy="run sekimori up as root, or use --no-agent and run agents elsewhere",
        )
    state_dir = collector.config.data_dir / "agent"
    state_dir.mkdir(parents=True, exist_ok=True)
    enroll_local_agent(collector, state_dir)
    log_path = collector.config.data_dir / "agent.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            agent_command(collector, state_dir),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    return LocalAgent(process, state_dir, log_path)
