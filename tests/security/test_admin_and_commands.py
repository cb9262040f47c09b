"""Operator library calls (what the CLI wires) and the command channel end to end in-process:
a real agent runtime with an enrolled identity, the collector in a thread."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from agents.config import AgentConfig
from agents.errors import ConfigError, NotFoundError
from agents.runtime import Agent
from collector.admin import (
    create_token,
    init_collector,
    list_agents,
    parse_duration,
    request_action,
)
from tests.agents.agent_testkit import make_pki
from tests.security.kit import enroll_agent, start_collector


def test_durations_and_init_with_a_given_ca(tmp_path: Path) -> None:
    assert parse_duration("90s") == 90
    assert parse_duration("1h") == 3600
    with pytest.raises(ConfigError):
        parse_duration("soon")
    files = init_collector(tmp_path / "fresh")
    assert files.ca_key.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "fresh" / "registry.db").stat().st_mode & 0o777 == 0o600
    pki = make_pki(tmp_path / "pki")
    given = init_collector(tmp_path / "given", ca_cert=pki.ca_pem, ca_key=pki.key_pem)
    assert given.ca_cert.read_bytes() == pki.ca_pem.read_bytes()
    with pytest.raises(ConfigError):
        init_collector(tmp_path / "given", ca_cert=pki.ca_pem, ca_key=pki.key_pem)
    with pytest.raises(ConfigError):
        create_token(tmp_path / "fresh", ttl="0s")


def test_command_channel_with_a_real_agent_and_renewal(tmp_path: Path) -> None:
    thread = start_collector(tmp_path / "data", client_validity=timedelta(seconds=9))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop = threading.Event()
    try:
        identity = enroll_agent(thread, tmp_path / "agent")
        config = AgentConfig(
            collector_url=thread.collector.url,
            state_dir=tmp_path / "agent",
            process=False,
            network=False,
            heartbeat_interval=0.5,
            ship_interval=0.2,
            control_interval=0.3,
            allowed_actions=frozenset({"kill_process"}),
        )
        agent = Agent(config)
        runner = threading.Thread(target=agent.run, args=(stop,), daemon=True)
        runner.start()
        data_dir = thread.collector.config.data_dir
        kill = request_action(
            data_dir,
            identity.agent_id,
            "kill_process",
            {"pid": child.pid},
            actor="analyst-1",
            alert_id="alert-42",
        )
        isolate = request_action(data_dir, identity.agent_id, "isolate_host", actor="analyst-1")
        actions = thread.collector.auth.actions
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (
            actions.get(kill.id).state == "pending"
            or actions.get(isolate.id).state == "pending"
            or agent.control is None
            or agent.control.renewals == 0
        ):
            time.sleep(0.2)
        assert child.wait(10) == -9
        assert actions.get(kill.id).state == "done"
        assert actions.get(isolate.id).state == "refused"  # not enabled on this host
        assert agent.control is not None and agent.control.renewals >= 1
        seen = thread.collector.store.count_events()
        time.sleep(1.5)
        assert thread.collector.store.count_events() > seen  # still shipping after renewal
        (record,) = list_agents(data_dir)
        assert record.last_seen is not None and record.backlog is not None
        ledger = [r for r in thread.collector.store.triage_records() if r.kind == "action"]
        assert [(r.actor, r.detail["state"]) for r in ledger if r.step_id == kill.id] == [
            ("analyst-1", "requested"),
            (f"agent:{identity.agent_id}", "done"),
        ]
        assert all(r.alert_id == "alert-42" for r in ledger if r.step_id == kill.id)
        with pytest.raises(NotFoundError):
            actions.report("someone-else", kill.id, "done", "")
        with pytest.raises(ConfigError):
            request_action(data_dir, identity.agent_id, "format_disk", actor="x")
    finally:
        stop.set()
        if child.poll() is None:
            child.kill()
        thread.stop()
