"""Response actions under the local policy (no real nftables here: see tests/chaos)."""

from __future__ import annotations

import os
import subprocess
import sys

from agents.response import ResponseExecutor, collector_address, isolation_ruleset


def test_nothing_runs_unless_enabled_locally() -> None:
    calls: list[str] = []
    executor = ResponseExecutor(
        frozenset(), "https://10.0.0.1:8443", nft=lambda s: calls.append(s) or (0, "")
    )
    for action in ("kill_process", "isolate_host", "release_isolation"):
        assert executor.execute(action, {"pid": 12345}).status == "refused"
    assert calls == []


def test_kill_process_kills_only_a_real_target() -> None:
    executor = ResponseExecutor(frozenset({"kill_process"}), "https://127.0.0.1:1")
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert executor.execute("kill_process", {"pid": child.pid}).status == "done"
        assert child.wait(10) == -9
    finally:
        if child.poll() is None:
            child.kill()
    for pid in (1, 0, -1, os.getpid(), "1", True):
        assert executor.execute("kill_process", {"pid": pid}).status == "refused"
    assert executor.execute("kill_process", {"pid": child.pid}).status == "failed"  # gone


def test_isolation_keeps_only_the_configured_collector() -> None:
    scripts: list[str] = []
    executor = ResponseExecutor(
        frozenset({"isolate_host", "release_isolation"}),
        "https://10.9.8.7:8443/prefix",
        nft=lambda s: scripts.append(s) or (0, ""),
    )
    outcome = executor.execute("isolate_host", {"address": "203.0.113.66"})  # args ignored
    assert outcome.status == "done"
    assert "10.9.8.7" in scripts[0]
    assert "203.0.113.66" not in scripts[0]
    assert "policy drop" in scripts[0]
    assert executor.execute("release_isolation", {}).status == "done"
    assert "delete table inet sekimori_isolate" in scripts[1]
    assert collector_address("https://[::1]:9000") == ("::1", 9000)
    assert "ip6 daddr ::1 tcp dport 9000" in isolation_ruleset("::1", 9000)


def test_nft_failure_is_reported() -> None:
    executor = ResponseExecutor(
        frozenset({"isolate_host"}), "https://10.0.0.1:8443", nft=lambda s: (1, "Error: syntax")
    )
    outcome = executor.execute("isolate_host", {})
    assert outcome.status == "failed"
    assert "syntax" in outcome.detail


def test_kill_with_an_entity_id_refuses_a_reused_pid() -> None:
    """The analyst acts on an event's process.entity_id; if that process is gone and its pid
    now belongs to another one, nothing is killed."""
    from agents.procfs import ProcFS

    procfs = ProcFS()
    executor = ResponseExecutor(frozenset({"kill_process"}), "https://127.0.0.1:1", procfs=procfs)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stat = procfs.stat(child.pid)
        assert stat is not None
        entity = procfs.entity_id(child.pid, stat.starttime_ticks)
        assert entity is not None
        # the same pid with another start time: what a reused pid looks like
        stale = procfs.entity_id(child.pid, stat.starttime_ticks - 1)
        refused = executor.execute("kill_process", {"pid": child.pid, "entity_id": stale})
        assert refused.status == "refused" and "reused" in refused.detail
        assert child.poll() is None, "the other process was killed"
        bad = executor.execute("kill_process", {"pid": child.pid, "entity_id": 7})
        assert bad.status == "refused" and child.poll() is None
        done = executor.execute("kill_process", {"pid": child.pid, "entity_id": entity})
        assert done.status == "done"
        assert child.wait(10) == -9
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    gone = executor.execute("kill_process", {"pid": child.pid, "entity_id": entity})
    assert gone.status == "failed"
