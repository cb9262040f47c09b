"""Faults while an agent ships: 0 lost and 0 duplicated, verified by sequence numbers.

Each test is bounded in count (events, kills) and time (every wait has a timeout)."""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path

import pytest

from tests.chaos.harness import Lab, delivered, verify, wait_for

pytestmark = pytest.mark.chaos


def _finish(lab: Lab, state: Path, until: int, *procs: object, timeout: float = 60) -> None:
    wait_for(lambda: delivered(lab.data_dir, state, until), f"delivery up to seq {until}", timeout)


def test_collector_sigkilled_repeatedly_while_agent_sends(tmp_path: Path) -> None:
    rng = random.Random(5)
    lab = Lab(tmp_path)
    collector = lab.collector()
    collector.start()
    agent = None
    try:
        lab.wait_listening(collector)
        state = tmp_path / "agent"
        lab.enroll(state)
        until = 1500
        agent = lab.agent(state, "--rate", "150", "--until-seq", str(until))
        agent.start()
        for _ in range(5):  # bounded: five SIGKILLs of our own collector process
            time.sleep(rng.uniform(0.8, 2.0))
            collector.kill()
            time.sleep(rng.uniform(0.2, 1.0))
            collector.start()
            lab.wait_listening(collector)
        _finish(lab, state, until)
        assert agent.stop() == 0, lab.tail(agent)
    finally:
        if agent is not None:
            agent.stop()
        collector.stop()
    verdict = verify(lab.data_dir, state)
    assert verdict.last_seq >= until
    assert (verdict.lost, verdict.duplicated, verdict.announced) == ([], [], [])


def test_agent_sigkilled_and_restarted(tmp_path: Path) -> None:
    rng = random.Random(7)
    lab = Lab(tmp_path)
    collector = lab.collector()
    collector.start()
    agent = None
    try:
        lab.wait_listening(collector)
        state = tmp_path / "agent"
        lab.enroll(state)
        until = 1200
        agent = lab.agent(state, "--rate", "150", "--until-seq", str(until))
        agent.start()
        for _ in range(4):  # bounded: four SIGKILLs of our own agent process
            time.sleep(rng.uniform(1.0, 2.0))
            agent.kill()
            agent.start()
        _finish(lab, state, until)
        assert agent.stop() == 0, lab.tail(agent)
    finally:
        if agent is not None:
            agent.stop()
        collector.stop()
    verdict = verify(lab.data_dir, state)
    assert (verdict.lost, verdict.duplicated, verdict.announced) == ([], [], [])


def test_slow_store_with_client_timeouts_resends_idempotently(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    collector = lab.collector("--slow", "0.01", "0.01", "1.2")
    collector.start()
    agent = None
    try:
        lab.wait_listening(collector)
        state = tmp_path / "agent"
        lab.enroll(state)
        until = 400
        agent = lab.agent(state, "--rate", "100", "--until-seq", str(until), "--timeout", "0.5")
        agent.start()
        _finish(lab, state, until, timeout=90)
        assert agent.stop() == 0, lab.tail(agent)
    finally:
        if agent is not None:
            agent.stop()
        collector.stop()
    assert "timed out" in lab.tail(agent) or "unreachable" in lab.tail(agent)  # resends happened
    verdict = verify(lab.data_dir, state)
    assert (verdict.lost, verdict.duplicated, verdict.announced) == ([], [], [])


def test_spool_bound_exceeded_announces_exactly_the_gap(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    collector = lab.collector()
    collector.start()
    lab.wait_listening(collector)
    state = tmp_path / "agent"
    lab.enroll(state)
    collector.stop()  # collector down: the agent must spool, and its bound is tiny
    until = 800
    agent = lab.agent(state, "--rate", "400", "--until-seq", str(until), "--spool-max", "65536")
    agent.start()
    try:
        wait_for(lambda: "generated" in agent.log.read_text(), "generation", 30)
        collector.start()
        lab.wait_listening(collector)
        _finish(lab, state, until)
        assert agent.stop() == 0, lab.tail(agent)
    finally:
        agent.stop()
        collector.stop()
    verdict = verify(lab.data_dir, state)
    assert verdict.lost == []
    assert verdict.duplicated == []
    assert verdict.announced, "the bound was exceeded: a gap must be announced"
    for first, last, count in verdict.announced:
        assert count == last - first + 1
    missing = verdict.last_seq - verdict.stored
    assert missing == sum(count for _, _, count in verdict.announced)


def test_collector_disk_full_then_freed(tmp_path: Path) -> None:
    assert os.geteuid() == 0, "this chaos test mounts a tmpfs: run as root (CI does)"
    lab = Lab(tmp_path)
    lab.data_dir.mkdir()
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(lab.data_dir)], check=True
    )
    collector = lab.collector()
    agent = None
    try:
        collector.start()
        lab.wait_listening(collector)
        state = tmp_path / "agent"
        lab.enroll(state)
        until = 1500
        agent = lab.agent(state, "--rate", "150", "--until-seq", str(until))
        agent.start()
        time.sleep(2.0)
        filler = lab.data_dir / "filler"
        with open(filler, "wb") as handle:  # fill the collector's disk to the last byte
            try:
                while True:
                    handle.write(b"\0" * 65536)
                    handle.flush()
            except OSError:
                pass
        wait_for(
            lambda: "store unavailable" in lab.tail(collector) or "full" in lab.tail(collector),
            "the collector to hit the full disk",
            30,
        )
        time.sleep(2.0)
        filler.unlink()
        _finish(lab, state, until)
        assert agent.stop() == 0, lab.tail(agent)
        collector.stop()
        verdict = verify(lab.data_dir, state)
    finally:
        if agent is not None:
            agent.stop()
        collector.stop()
        subprocess.run(["umount", "-l", str(lab.data_dir)], check=False)
    assert (verdict.lost, verdict.duplicated, verdict.announced) == ([], [], [])
