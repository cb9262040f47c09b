from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agents.__main__ import main
from agents.config import AgentConfig, load_or_create_agent_id
from agents.errors import ConfigError, TransportError
from agents.runtime import run_agent
from tests.agents.agent_testkit import FakeCollector, Pki, check_contract


def config(tmp_path: Path, collector: FakeCollector, pki: Pki, **kw: object) -> AgentConfig:
    base: dict[str, object] = {
        "collector_url": collector.url,
        "ca_file": pki.ca_pem,
        "state_dir": tmp_path / "state",
        "name": "pc-test",
        "process": False,
        "once": True,
        "ship_interval": 0.1,
    }
    base.update(kw)
    return AgentConfig(**base)  # type: ignore[arg-type]


def test_once_ships_heartbeat_and_listeners(
    tmp_path: Path, collector: FakeCollector, pki: Pki
) -> None:
    cfg = config(tmp_path, collector, pki, token="t0k")
    run_agent(cfg, threading.Event())
    events = collector.events
    kinds = {e["sekimori"]["kind"] for e in events}
    assert "heartbeat" in kinds and "network_listen" in kinds
    agent_id = load_or_create_agent_id(cfg.state_dir)
    for event in events:
        check_contract(event)
        assert event["agent"]["id"] == agent_id and event["host"]["name"] == "pc-test"
    assert collector.headers[0]["Authorization"] == "Bearer t0k"
    # the collector's own listener belongs to this test process... which is the agent here:
    # our own sockets are not reported
    port = int(collector.url.rsplit(":", 1)[1])
    assert not [e for e in events if e.get("source", {}).get("port") == port]
    last = max(e["sekimori"]["seq"] for e in events)
    run_agent(cfg, threading.Event())  # restart: same id, seq continues
    second = collector.events[len(events) :]
    assert second[0]["agent"]["id"] == agent_id
    assert min(e["sekimori"]["seq"] for e in second) == last + 1


def test_once_fails_loudly_when_undeliverable(
    tmp_path: Path, collector: FakeCollector, pki: Pki
) -> None:
    cfg = config(tmp_path, collector, pki, collector_url="https://127.0.0.1:1", drain_timeout=1)
    with pytest.raises(TransportError) as info:
        run_agent(cfg, threading.Event())
    assert info.value.remedy and "spool" in info.value.remedy
    ok = config(tmp_path, collector, pki)  # next run ships the kept events too
    run_agent(ok, threading.Event())
    seqs = sorted(e["sekimori"]["seq"] for e in collector.events)
    assert seqs == list(range(1, len(seqs) + 1))


def test_continuous_run_captures_exec_and_stops_cleanly(
    tmp_path: Path, collector: FakeCollector, pki: Pki
) -> None:
    assert os.geteuid() == 0, "needs root for the process connector"
    cfg = config(tmp_path, collector, pki, process=True, once=False, heartbeat_interval=0.2)
    stop = threading.Event()
    thread = threading.Thread(target=run_agent, args=(cfg, stop), daemon=True)
    thread.start()
    child_pid = None
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if child_pid is None and any(e["event"]["action"] == "heartbeat" for e in collector.events):
            child = subprocess.Popen(["/bin/true", "runtime-test"])
            child.wait()
            child_pid = child.pid
        if child_pid and any(
            e.get("process", {}).get("pid") == child_pid and e["event"]["action"] == "exec"
            for e in collector.events
        ):
            break
        time.sleep(0.05)
    stop.set()
    thread.join(20)
    assert not thread.is_alive(), "agent did not stop"
    assert child_pid is not None, "agent never shipped its start heartbeat"
    execs = [
        e
        for e in collector.events
        if e["event"]["action"] == "exec" and e["process"]["pid"] == child_pid
    ]
    assert execs, "exec of /bin/true not shipped"
    assert execs[0]["process"]["parent"]["pid"] == os.getpid()
    seqs = sorted({e["sekimori"]["seq"] for e in collector.events})
    assert seqs == list(range(1, len(seqs) + 1)), "seq must be contiguous"
    for event in collector.events:
        check_contract(event)
    # the agent is this process: none of its own execs/sockets, but its children are reported
    assert not [e for e in collector.events if e.get("process", {}).get("pid") == os.getpid()]


def test_main_once_and_errors(
    tmp_path: Path, collector: FakeCollector, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    token = tmp_path / "token"
    token.write_text("abc\n")
    code = main(
        [
            "--collector",
            collector.url,
            "--ca",
            str(pki.ca_pem),
            "--state-dir",
            str(tmp_path / "s"),
            "--no-process",
            "--once",
            "--token-file",
            str(token),
            "--log-level",
            "ERROR",
        ]
    )
    assert code == 0
    assert collector.headers[-1]["Authorization"] == "Bearer abc"
    code = main(
        ["--collector", "http://x", "--state-dir", str(tmp_path / "s"), "--once", "--no-process"]
    )
    assert code == ConfigError.exit_code
    assert "https" in capsys.readouterr().err


def test_config_validation(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        AgentConfig(collector_url="https://x:1", state_dir=tmp_path, network_interval=0)
    with pytest.raises(ConfigError):
        AgentConfig(collector_url="https://x:1", state_dir=tmp_path, client_key=tmp_path)
