from __future__ import annotations

import threading
from pathlib import Path

import pytest

from agents.events import EventBuilder
from agents.procfs import HashCache
from agents.sources.base import ProcessEnd, ProcessStart, SourceGap
from agents.sources.netlink import PROC_EVENT_EXEC, PROC_EVENT_EXIT, PROC_EVENT_FORK, ProcEvent
from agents.sources.proc_connector import (
    ProcConnectorSource,
    ProcessTracker,
    decode_exit_status,
)
from agents.spool import Spool
from tests.agents.agent_testkit import FakeProc, check_contract

OWN = 777


def fork(parent: int, child: int, thread_of: int | None = None) -> ProcEvent:
    tgid = thread_of or child
    return ProcEvent(PROC_EVENT_FORK, 0, child, tgid, parent_pid=parent, parent_tgid=parent)


def exec_(pid: int) -> ProcEvent:
    return ProcEvent(PROC_EVENT_EXEC, 0, pid, pid)


def exit_(pid: int, status: int = 0) -> ProcEvent:
    return ProcEvent(PROC_EVENT_EXIT, 0, pid, pid, exit_code=status, exit_signal=17)


@pytest.fixture
def tracker(fake_proc: FakeProc, tmp_path: Path) -> ProcessTracker:
    dash = tmp_path / "dash"
    dash.write_bytes(b"\x7fELF dash")
    fake_proc.add(1, exe="/sbin/init", args=["/sbin/init"], ppid=0, uid=0)
    fake_proc.add(4000, exe="/usr/bin/bash", args=["-bash"], ppid=1, starttime=100)
    tracker = ProcessTracker(fake_proc.procfs(), HashCache(), own_pid=OWN)
    tracker.seed()
    return tracker


def test_exec_is_enriched_from_proc(
    tracker: ProcessTracker, fake_proc: FakeProc, tmp_path: Path, builder: EventBuilder
) -> None:
    tracker.handle(fork(4000, 4242))
    fake_proc.add(
        4242,
        exe=str(tmp_path / "dash"),
        args=["sh", "-c", "echo aWQ= | base64 -d | sh"],
        ppid=4000,
        starttime=200,
    )
    record = tracker.handle(exec_(4242))
    assert isinstance(record, ProcessStart)
    assert not record.partial
    assert record.process.executable == str(tmp_path / "dash")
    assert record.parent is not None and record.parent.executable == "/usr/bin/bash"
    assert record.sha256 is not None and len(record.sha256) == 64
    assert (
        record.entity_id and record.parent_entity_id and record.entity_id != record.parent_entity_id
    )
    event = builder.build(record)
    event["sekimori"]["seq"] = 17
    from agents.schema import seal

    check_contract(seal(event))
    process = event["process"]
    assert process["command_line"] == "sh -c 'echo aWQ= | base64 -d | sh'"
    assert process["args"] == ["sh", "-c", "echo aWQ= | base64 -d | sh"]
    assert process["working_directory"] == "/home/alice"
    assert process["parent"] == {
        "pid": 4000,
        "name": "bash",
        "executable": "/usr/bin/bash",
        "command_line": "-bash",
        "entity_id": record.parent_entity_id,
    }
    assert event["user"] == {"id": "1000", "name": "alice"}
    assert event["event"]["action"] == "exec"
    assert event["sekimori"]["kind"] == "process_start"


def test_vanished_process_still_emits_partial_event(
    tracker: ProcessTracker, builder: EventBuilder
) -> None:
    tracker.handle(fork(4000, 5000))
    record = tracker.handle(exec_(5000))  # gone before /proc could be read
    assert isinstance(record, ProcessStart)
    assert record.partial
    assert record.process.executable == "unknown"
    assert record.process.ppid == 4000  # from the fork cache
    assert record.parent is not None and record.parent.executable == "/usr/bin/bash"
    event = builder.build(record)
    event["sekimori"]["seq"] = 1
    from agents.schema import seal

    check_contract(seal(event))
    assert event["tags"] == ["partial"]
    assert tracker.partial_events == 1


def test_zombie_falls_back_to_comm(tracker: ProcessTracker, fake_proc: FakeProc) -> None:
    fake_proc.add(5001, exe="/usr/bin/true", args=["true"], ppid=4000)
    fake_proc.zombie(5001)
    record = tracker.handle(exec_(5001))
    assert isinstance(record, ProcessStart) and record.partial
    assert record.process.executable == "true"
    assert record.process.ppid == 4000


def test_absolute_argv0_is_the_executable_fallback(
    tracker: ProcessTracker, fake_proc: FakeProc
) -> None:
    fake_proc.add(5002, exe=None, args=["/opt/tool/run", "-x"], ppid=4000)
    record = tracker.handle(exec_(5002))
    assert isinstance(record, ProcessStart) and record.partial
    assert record.process.executable == "/opt/tool/run"


def test_exit_carries_cached_identity(
    tracker: ProcessTracker, fake_proc: FakeProc, builder: EventBuilder
) -> None:
    fake_proc.add(4300, exe="/usr/bin/curl", args=["curl", "http://x"], ppid=4000)
    tracker.handle(exec_(4300))
    fake_proc.remove(4300)
    record = tracker.handle(exit_(4300, status=7 << 8))
    assert isinstance(record, ProcessEnd)
    assert record.exit_code == 7 and record.signal is None
    assert record.process is not None and record.process.executable == "/usr/bin/curl"
    event = builder.build(record)
    event["sekimori"]["seq"] = 2
    from agents.schema import seal

    check_contract(seal(event))
    assert event["process"]["name"] == "curl"
    assert event["process"]["exit_code"] == 7
    assert event["process"]["parent"] == {"pid": 4000}
    assert 4300 not in tracker.cache


def test_fork_only_child_exit_uses_parent_copy(tracker: ProcessTracker) -> None:
    tracker.handle(fork(4000, 4400))
    record = tracker.handle(exit_(4400, status=9))  # SIGKILL
    assert isinstance(record, ProcessEnd)
    assert record.process is not None and record.process.executable == "/usr/bin/bash"
    assert (record.exit_code, record.signal) == (137, 9)


def test_threads_and_own_process_are_ignored(tracker: ProcessTracker, fake_proc: FakeProc) -> None:
    tracker.handle(fork(4000, 4501, thread_of=4000))
    assert 4501 not in tracker.cache
    fake_proc.add(OWN, exe="/usr/bin/python3", args=["python3", "-m", "agents"], ppid=1)
    assert tracker.handle(exec_(OWN)) is None
    assert tracker.handle(exit_(OWN)) is None
    thread_exit = ProcEvent(PROC_EVENT_EXIT, 0, 4501, 4000)
    assert tracker.handle(thread_exit) is None
    # children of the agent are reported
    fake_proc.add(4600, exe="/usr/bin/id", args=["id"], ppid=OWN)
    assert isinstance(tracker.handle(exec_(4600)), ProcessStart)


def test_decode_exit_status() -> None:
    assert decode_exit_status(0) == (0, None)
    assert decode_exit_status(1 << 8) == (1, None)
    assert decode_exit_status(15) == (143, 15)


class FakeSocket:
    def __init__(self, batches: list[list[ProcEvent]], overruns_after: int) -> None:
        self.batches = batches
        self.overruns = 0
        self.calls = 0
        self.overruns_after = overruns_after
        self.closed = False

    def receive(self, timeout: float) -> list[ProcEvent]:
        self.calls += 1
        if self.calls == self.overruns_after:
            self.overruns += 2
        return self.batches.pop(0) if self.batches else []

    def close(self) -> None:
        self.closed = True


def test_source_yields_records_and_overrun_gaps(
    fake_proc: FakeProc, builder: EventBuilder, tmp_path: Path
) -> None:
    fake_proc.add(4000, exe="/usr/bin/bash", args=["bash"], ppid=1)
    fake_proc.add(4001, exe="/usr/bin/ls", args=["ls", "-l"], ppid=4000)
    sock = FakeSocket([[fork(4000, 4001), exec_(4001)], [exit_(4001)]], overruns_after=2)
    source = ProcConnectorSource(fake_proc.procfs(), own_pid=OWN, socket_factory=lambda: sock)  # type: ignore[arg-type,return-value]
    stop = threading.Event()
    records = []
    for record in source.records(stop):
        records.append(record)
        if len(records) == 3:
            stop.set()
    records.sort(key=lambda r: [ProcessStart, ProcessEnd, SourceGap].index(type(r)))
    assert [type(r) for r in records] == [ProcessStart, ProcessEnd, SourceGap]
    gap = records[2]
    assert isinstance(gap, SourceGap) and gap.count == 2 and gap.reason == "netlink_enobufs"
    assert sock.closed
    spool = Spool(
        tmp_path / "spool", make_gap=builder.spool_gap, max_bytes=1 << 20, segment_bytes=1 << 16
    )
    spool.append([builder.build(r) for r in records])
    batch = spool.read_batch(10, 1 << 20)
    assert batch is not None
    import json

    events = [json.loads(p) for p in batch.payloads]
    for event in events:
        check_contract(event)
    gap_event = events[2]["sekimori"]
    assert gap_event["gap"] == {
        "first_seq": 3,
        "last_seq": 3,
        "count": 2,
        "reason": "proc_connector:netlink_enobufs",
    }
