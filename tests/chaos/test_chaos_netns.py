"""Agent in its own network namespace: cut off for a while (0 lost, 0 duplicated), and
isolated by nftables through the command channel (only the collector stays reachable)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from collector.actions import ActionQueue
from collector.registry import Registry
from collector.store.sqlite import SqliteStore
from tests.chaos.harness import Lab, delivered, stored, verify, wait_for
from tests.chaos.netns import Pair, namespace_pair, sh

pytestmark = pytest.mark.chaos


def lab_in(pair: Pair, root: Path) -> Lab:
    return Lab(root, port=8443, host=pair.collector_ip, prefix=pair.run_in(pair.collector))


def test_agent_network_cut_off_then_restored(tmp_path: Path) -> None:
    with namespace_pair(1) as pair:
        lab = lab_in(pair, tmp_path)
        collector = lab.collector("--tls-name", pair.collector_ip)
        collector.start()
        state = tmp_path / "agent"
        agent = lab.agent(
            state, "--rate", "150", "--until-seq", "900", prefix=pair.run_in(pair.agent)
        )
        try:
            lab.wait_listening(collector)
            lab.enroll(state, prefix=pair.run_in(pair.agent))
            agent.start()
            wait_for(lambda: len(stored(lab.data_dir)) > 50, "first events")
            pair.link(up=False)  # the agent's only link goes down
            time.sleep(3.0)
            pair.link(up=True)
            wait_for(lambda: delivered(lab.data_dir, state, 900), "delivery after the cut", 60)
            assert agent.stop() == 0, lab.tail(agent)
        finally:
            agent.stop()
            collector.stop()
        verdict = verify(lab.data_dir, state)
        assert (verdict.lost, verdict.duplicated, verdict.announced) == ([], [], [])


def _connects(pair: Pair, port: int) -> bool:
    probe = (
        f"import socket; s=socket.socket(); s.settimeout(1.5); "
        f"print(s.connect_ex(('{pair.collector_ip}', {port})))"
    )
    out = sh(*pair.run_in(pair.agent), sys.executable, "-c", probe, check=False)
    return out.stdout.strip() == "0"


def _command_state(lab: Lab, command_id: str) -> str:
    registry = Registry(lab.data_dir / "registry.db")
    try:
        return str(registry.read("SELECT state FROM commands WHERE id=?", (command_id,))[0][0])
    finally:
        registry.close()


def test_isolation_through_the_command_channel(tmp_path: Path) -> None:
    with namespace_pair(2) as pair:
        lab = lab_in(pair, tmp_path)
        collector = lab.collector("--tls-name", pair.collector_ip)
        collector.start()
        state = tmp_path / "agent"
        agent = lab.agent(
            state,
            "--rate",
            "20",
            "--until-seq",
            "100000",
            "--allow",
            "isolate_host",
            "--allow",
            "release_isolation",
            prefix=pair.run_in(pair.agent),
        )
        other = subprocess.Popen(
            [
                *pair.run_in(pair.collector),
                sys.executable,
                "-c",
                "import socket,time; s=socket.socket(); s.bind(('0.0.0.0', 9999)); "
                "s.listen(50); time.sleep(120)",
            ]
        )
        try:
            lab.wait_listening(collector)
            lab.enroll(state, prefix=pair.run_in(pair.agent))
            agent.start()
            wait_for(lambda: _connects(pair, 9999), "the other service to be reachable")
            agent_id = (state / "agent_id").read_text().strip()

            def request(action: str) -> str:
                registry = Registry(lab.data_dir / "registry.db")
                store = SqliteStore(lab.data_dir / "sekimori.db")
                try:
                    queue = ActionQueue(registry, store)
                    return queue.request(agent_id, action, actor="chaos-test").id
                finally:
                    store.close()
                    registry.close()

            isolate = request("isolate_host")
            wait_for(lambda: _command_state(lab, isolate) == "done", "isolation done", 30)
            assert not _connects(pair, 9999), "isolated host still reaches another service"
            before = len(stored(lab.data_dir))
            wait_for(lambda: len(stored(lab.data_dir)) > before + 20, "shipping while isolated")
            root_tables = sh("nft", "list", "tables", check=False).stdout
            assert "sekimori_isolate" not in root_tables  # the machine's own network untouched
            release = request("release_isolation")
            wait_for(lambda: _command_state(lab, release) == "done", "release done", 30)
            assert _connects(pair, 9999)
        finally:
            other.kill()
            other.wait()
            agent.stop()
            collector.stop()
        store = SqliteStore(lab.data_dir / "sekimori.db")
        try:
            audited = [r for r in store.triage_records() if r.kind == "action"]
        finally:
            store.close()
        assert [(r.detail["action"], r.detail["state"]) for r in audited] == [
            ("isolate_host", "requested"),
            ("isolate_host", "done"),
            ("release_isolation", "requested"),
            ("release_isolation", "done"),
        ]
