"""End to end with real processes: `sekimori collector run` and `python -m agents` as
subprocesses, real TLS, the kernel's netlink process connector, real shell commands.

Needs root (the process connector); CI runs as root, so a missing privilege fails loudly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support import free_port, wait_for

pytestmark = pytest.mark.e2e
BIN = Path(sys.executable).parent
SEKIMORI = str(BIN / "sekimori")


@dataclass
class Deployment:
    data_dir: Path
    collector: subprocess.Popen[bytes]
    agent: subprocess.Popen[bytes]

    def cli(self, *args: str) -> Any:
        out = subprocess.run(
            [SEKIMORI, *args, "--data-dir", str(self.data_dir), "--json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return json.loads(out.stdout)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    assert os.geteuid() == 0, "e2e tests need root for the netlink process connector"
    data_dir = tmp_path / "collector"
    port = free_port()
    log = open(tmp_path / "collector.log", "wb")  # noqa: SIM115 - closed below
    collector = subprocess.Popen(
        [SEKIMORI, "collector", "run", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    agent = None
    deployment: Deployment | None = None
    try:
        wait_for(lambda: (data_dir / "registry.db").exists() and _listening(port), "collector")
        url = f"https://127.0.0.1:{port}"
        _enroll(data_dir, url, tmp_path / "agent")
        agent_log = open(tmp_path / "agent.log", "wb")  # noqa: SIM115
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agents",
                "--state-dir",
                str(tmp_path / "agent"),
                "--heartbeat-interval",
                "1",
            ],
            stdout=agent_log,
            stderr=subprocess.STDOUT,
        )
        deployment = Deployment(data_dir, collector, agent)
        wait_for(
            lambda: (data_dir / "sekimori.db").exists() and _has_events(deployment),
            "the agent's first events",
        )
        yield deployment
    finally:
        if agent is not None:
            stop(agent)
        stop(collector)
        if deployment is not None and deployment.collector is not collector:
            stop(deployment.collector)  # a test restarted it: stop the one it started too
        log.close()
        for name in ("collector.log", "agent.log"):
            path = tmp_path / name
            if path.exists():
                sys.stderr.write(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}\n")


def _enroll(data_dir: Path, url: str, state_dir: Path) -> None:
    """A one-time token from the registry, then `python -m agents enroll` as an operator would."""
    from collector.registry import Registry

    registry = Registry(data_dir / "registry.db")
    try:
        token = registry.create_token(ttl=300, uses=1)
    finally:
        registry.close()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "agents",
            "enroll",
            url,
            "-",
            "--ca",
            str(data_dir / "ca.pem"),
            "--state-dir",
            str(state_dir),
        ],
        input=token + "\n",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (state_dir / "identity" / "agent.pem").stat().st_mode & 0o777 == 0o600


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _has_events(deployment: Deployment) -> bool:
    from collector.store.sqlite import SqliteStore

    store = SqliteStore(deployment.data_dir / "sekimori.db")
    try:
        return store.count_events() > 0
    finally:
        store.close()


def _events(deployment: Deployment, **match: Any) -> list[dict[str, Any]]:
    from agents.schema import get_path
    from collector.models import EventQuery
    from collector.store.sqlite import SqliteStore

    store = SqliteStore(deployment.data_dir / "sekimori.db")
    try:
        found = store.query_events(EventQuery(kinds=("process_start",), limit=100_000))
    finally:
        store.close()
    return [e for e in found if all(get_path(e, k) == v for k, v in match.items())]


def test_suspicious_command_becomes_an_alert_and_is_triaged(
    deployment: Deployment, tmp_path: Path
) -> None:
    subprocess.run(["sh", "-c", "echo aWQ= | base64 -d | sh"], check=True, capture_output=True)
    title = "Base64-Decoded Payload Executed by a Shell"
    alert = wait_for(
        lambda: next((a for a in deployment.cli("alerts", "list") if a["title"] == title), None),
        "the base64 alert",
    )
    assert alert["level"] == "high"
    assert "attack.t1140" in alert["tags"]
    shown = deployment.cli("alerts", "show", alert["id"])
    (event,) = shown["events"]
    assert event["process"]["args"] == ["sh", "-c", "echo aWQ= | base64 -d | sh"]
    assert event["process"]["command_line"] == "sh -c 'echo aWQ= | base64 -d | sh'"
    assert event["process"]["parent"]["pid"] == os.getpid()
    assert len(event["process"]["hash"]["sha256"]) == 64

    answers = tmp_path / "answers.yaml"
    playbook = subprocess.run(
        [
            SEKIMORI,
            "triage",
            alert["id"],
            "--data-dir",
            str(deployment.data_dir),
            "--answers",
            "/dev/null",
            "--as",
            "e2e",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert playbook.returncode == 5, playbook.stderr  # an empty answers file: step named
    assert "no answer for step" in playbook.stderr
    steps = _answer_all(alert["id"], deployment)
    answers.write_text("\n".join(f"{k}: {json.dumps(v)}" for k, v in steps.items()))
    done = subprocess.run(
        [
            SEKIMORI,
            "triage",
            alert["id"],
            "--data-dir",
            str(deployment.data_dir),
            "--answers",
            str(answers),
            "--as",
            "e2e-analyst",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    closed = deployment.cli("alerts", "show", alert["id"])
    assert closed["status"] == "closed"
    timeline = json.loads(
        subprocess.run(
            [
                SEKIMORI,
                "timeline",
                "--alert",
                alert["id"],
                "--data-dir",
                str(deployment.data_dir),
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    kinds = [entry["kind"] for entry in timeline]
    assert "alert" in kinds
    assert "triage" in kinds
    assert any("e2e-analyst" in e["summary"] for e in timeline if e["kind"] == "triage")
    assert deployment.cli("audit", "verify")["problems"] == []


def _answer_all(alert_id: str, deployment: Deployment) -> dict[str, str]:
    """Answers for every check/note/close step of the playbook this alert selects."""
    from collector.store.sqlite import SqliteStore
    from playbooks.loader import load_builtin_playbooks
    from playbooks.selection import select_playbook

    store = SqliteStore(deployment.data_dir / "sekimori.db")
    try:
        alert = store.get_alert(alert_id)
    finally:
        store.close()
    assert alert is not None
    playbook = select_playbook(alert, load_builtin_playbooks().playbooks)
    answers: dict[str, str] = {}
    for step in playbook.steps:
        if step.kind == "check":
            answers[step.id] = step.choices[-1]
        elif step.kind == "note":
            answers[step.id] = "checked by the end-to-end test"
        elif step.kind == "close" and step.resolution is None:
            answers[step.id] = "true_positive"
    return answers


def test_a_process_living_under_10ms_is_captured(deployment: Deployment) -> None:
    marker = f"sekimori-e2e-{uuid.uuid4().hex}"
    started = time.perf_counter()
    subprocess.run(["/bin/true", marker], check=True)
    lifetime_ms = (time.perf_counter() - started) * 1000
    sys.stderr.write(f"short-lived process: fork to reap {lifetime_ms:.2f} ms\n")
    (event,) = wait_for(
        lambda: _events(deployment, **{"process.command_line": f"/bin/true {marker}"}),
        "the short-lived process",
    )
    assert event["process"]["executable"] == "/usr/bin/true"
    assert event["process"]["args"] == ["/bin/true", marker]
    assert event["process"]["parent"]["pid"] == os.getpid()


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except FileNotFoundError:  # the thread ended meanwhile
            continue
    return found


def test_collector_run_ingests_through_its_worker_processes(deployment: Deployment) -> None:
    """``collector run`` without ``--ingest-workers`` forks one ingest worker per core (on
    two or more cores): the events above came through them. A collector killed outright
    (SIGKILL: nothing closes the pool) leaves no orphan workers behind."""
    from collector.cli.service import auto_workers

    workers = _children(deployment.collector.pid)
    assert len(workers) == auto_workers(), workers
    deployment.collector.kill()
    deployment.collector.wait(10)
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in workers), "workers exit")


def _marked(marker: str) -> None:
    """A process that lives ~50 ms with ``marker`` as its last argument. This test is about
    delivery, not capture speed (the test above covers sub-10-ms processes), so the process
    lives long enough to be fully enriched even when the machine is busy."""
    subprocess.run(["/bin/sh", "-c", "sleep 0.05", marker], check=True)


def test_agent_restart_loses_nothing_and_duplicates_nothing(deployment: Deployment) -> None:
    markers = [f"sekimori-seq-{uuid.uuid4().hex[:8]}-{i}" for i in range(20)]
    for marker in markers[:10]:
        _marked(marker)
    stop(deployment.collector)  # collector down: the agent must spool
    for marker in markers[10:]:
        _marked(marker)
    time.sleep(1.0)
    # restart the collector on the same data dir and port (it reuses its CA and registry)
    args = deployment.collector.args
    assert isinstance(args, list)
    port = args[args.index("--port") + 1]
    deployment.collector = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    wait_for(lambda: _listening(int(port)), "collector restart")

    def all_seen() -> bool:
        seen = {(e["process"].get("args") or [""])[-1] for e in _events(deployment)}
        return all(m in seen for m in markers)

    wait_for(all_seen, "all 20 processes after the collector restart", timeout=60)
    seqs = [e["sekimori"]["seq"] for e in _events(deployment)]
    assert len(seqs) == len(set(seqs)), "an event was stored twice"


def test_demo_raises_every_expected_alert() -> None:
    assert os.geteuid() == 0, "the demo needs root for the netlink process connector"
    result = subprocess.run(
        [SEKIMORI, "demo", "--json"], capture_output=True, text=True, check=False, timeout=180
    )
    assert result.returncode == 0, result.stderr
    titles = {alert["title"] for alert in json.loads(result.stdout)}
    assert titles >= {
        "Base64-Decoded Payload Executed by a Shell",
        "Download Piped Into a Shell or Interpreter",
        "Reverse Shell Command Line",
        "Read or Copy of /etc/shadow",
    }
