"""Live tests on the real kernel. They need root and must fail (not skip) without it."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from agents.sources.base import Connection, Listen, ProcessEnd, ProcessStart, Record
from agents.sources.proc_connector import ProcConnectorSource
from agents.sources.sockets import SocketsSource


def require_root() -> None:
    assert os.geteuid() == 0, "live agent tests need root (netlink process connector)"


class Collecting:
    def __init__(self, source: ProcConnectorSource) -> None:
        self.source = source
        self.records: list[Record] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        for record in self.source.records(self.stop):
            self.records.append(record)

    def wait_for(self, predicate: object, timeout: float = 5.0) -> list[Record]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [r for r in list(self.records) if predicate(r)]  # type: ignore[operator]
            if found:
                return found
            time.sleep(0.02)
        return []


@pytest.fixture
def live_proc() -> Iterator[Collecting]:
    require_root()
    source = ProcConnectorSource(own_pid=-1, realtime=True)  # we watch our children
    source.check_compatible()
    collecting = Collecting(source)
    collecting.thread.start()
    assert source.ready.wait(10), "process connector did not subscribe"
    yield collecting
    collecting.stop.set()
    collecting.thread.join(5)


def test_live_exec_of_bin_true_is_captured(live_proc: Collecting) -> None:
    child = subprocess.Popen(["/bin/true", "--sekimori-live-test"])
    child.wait()
    starts = live_proc.wait_for(
        lambda r: isinstance(r, ProcessStart) and r.process.pid == child.pid
    )
    assert starts, "exec of /bin/true not captured"
    start = starts[0]
    assert isinstance(start, ProcessStart)
    assert start.process.executable.endswith("/true")  # type: ignore[union-attr]
    if not start.partial:
        assert start.process.args == ("/bin/true", "--sekimori-live-test"), start
        assert start.process.ppid == os.getpid()
        assert start.sha256 is not None
    ends = live_proc.wait_for(lambda r: isinstance(r, ProcessEnd) and r.pid == child.pid)
    assert ends and ends[0].exit_code == 0  # type: ignore[union-attr]


def test_live_exit_code_and_burst_of_short_processes(live_proc: Collecting) -> None:
    pids = []
    for _ in range(100):
        child = subprocess.Popen(["/bin/true"])
        child.wait()
        pids.append(child.pid)
    failing = subprocess.Popen(["/bin/sh", "-c", "exit 3"])
    failing.wait()
    ends = live_proc.wait_for(lambda r: isinstance(r, ProcessEnd) and r.pid == failing.pid)
    assert ends and ends[0].exit_code == 3  # type: ignore[union-attr]
    captured = {r.process.pid: r for r in live_proc.records if isinstance(r, ProcessStart)}
    missing = [pid for pid in pids if pid not in captured]
    assert not missing, f"{len(missing)} of 100 execs of /bin/true missed"
    complete = sum(1 for pid in pids if not captured[pid].partial)
    print(
        f"\n/bin/true x100: {complete} complete, {100 - complete} partial, "
        f"{live_proc.source.overruns} overruns"
    )
    assert complete >= 90, f"only {complete}/100 short-lived execs fully enriched"


def test_live_listener_and_connection_are_seen() -> None:
    require_root()
    source = SocketsSource(own_pid=1)  # not us: the test's sockets must be reported
    own_view = SocketsSource()  # the default ignores this process's sockets
    source.poll()
    own_view.poll()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    try:
        records = source.poll()
        listens = [r for r in records if isinstance(r, Listen) and r.port == port]
        assert listens, "listener on 127.0.0.1 not seen"
        assert listens[0].ip == "127.0.0.1" and listens[0].transport == "tcp"
        assert listens[0].owner is not None and listens[0].owner.pid == os.getpid()
        conns = [
            r
            for r in records
            if isinstance(r, Connection) and port in (r.local_port, r.remote_port)
        ]
        directions = sorted(c.direction for c in conns)
        assert directions == ["egress", "ingress"]
        again = source.poll()  # reported once only
        assert not [
            r
            for r in again
            if port
            in (
                getattr(r, "port", None),
                getattr(r, "local_port", None),
                getattr(r, "remote_port", None),
            )
        ]
        mine = [r for r in own_view.poll() if getattr(r, "port", None) == port]
        assert mine == [], "the agent reported its own process's socket"
    finally:
        for sock in (client, accepted, server):
            sock.close()


def test_live_kernel_overruns_are_counted() -> None:
    require_root()
    from agents.sources.netlink import ConnectorSocket

    conn = ConnectorSocket(rcvbuf=1)  # the kernel rounds up to its minimum (a few KiB)
    try:
        for _ in range(300):  # ~900 messages, not read while they arrive
            subprocess.Popen(["/bin/true"]).wait()
        deadline = time.monotonic() + 5
        while conn.overruns == 0 and time.monotonic() < deadline:
            conn.receive(0.1)
        assert conn.overruns >= 1, "ENOBUFS was not reported with a tiny receive buffer"
    finally:
        conn.close()
