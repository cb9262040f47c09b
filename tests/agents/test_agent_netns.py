"""One agent per network namespace (``--netns``): the namespace filter of the process source
against a virtual /proc, then real namespaces (``skm-na-*``), a real collector reachable only
inside one of them, and a real agent started from the initial namespace.

Needs root (``ip netns``, the process connector); without it the tests fail, never skip.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agents import netns
from agents.errors import ConfigError
from agents.procfs import HashCache
from agents.sources.base import ProcessEnd, ProcessStart
from agents.sources.netlink import PROC_EVENT_EXEC, PROC_EVENT_EXIT, PROC_EVENT_FORK, ProcEvent
from agents.sources.proc_connector import ProcessTracker
from tests.agents.agent_testkit import FakeProc
from tests.support import free_port, wait_for

SEKIMORI = str(Path(sys.executable).parent / "sekimori")
SUFFIX = str(os.getpid())
NS_A, NS_B = f"skm-na-a{SUFFIX}", f"skm-na-b{SUFFIX}"
NS_A_ADDRESS = "10.99.250.1"


def fork(parent: int, child: int) -> ProcEvent:
    return ProcEvent(PROC_EVENT_FORK, 0, child, child, parent_pid=parent, parent_tgid=parent)


def exec_(pid: int) -> ProcEvent:
    return ProcEvent(PROC_EVENT_EXEC, 0, pid, pid)


def exit_(pid: int) -> ProcEvent:
    return ProcEvent(PROC_EVENT_EXIT, 0, pid, pid, exit_signal=17)


# -- the filter, on a virtual /proc: /proc/PID/ns/net is a hard link to a "namespace" file ---
class NsProc:
    def __init__(self, fake: FakeProc, tmp_path: Path) -> None:
        self.fake = fake
        self.files = {name: tmp_path / f"netns-{name}" for name in ("a", "b")}
        for path in self.files.values():
            path.write_text("")

    def add(self, pid: int, ns: str, args: list[str], ppid: int) -> None:
        base = self.fake.add(pid, exe=f"/usr/bin/{args[0]}", args=args, ppid=ppid)
        (base / "ns").mkdir()
        os.link(self.files[ns], base / "ns" / "net")

    def target(self, ns: str) -> netns.NamespaceId:
        found = netns.namespace_id(self.files[ns])
        assert found is not None
        return found


@pytest.fixture
def ns_proc(fake_proc: FakeProc, tmp_path: Path) -> NsProc:
    proc = NsProc(fake_proc, tmp_path)
    proc.add(100, "a", ["sh"], ppid=1)
    proc.add(200, "b", ["sh"], ppid=1)
    return proc


def tracker_for(ns_proc: NsProc, ns: str = "a") -> ProcessTracker:
    tracker = ProcessTracker(
        ns_proc.fake.procfs(), HashCache(), own_pid=777, netns=ns_proc.target(ns)
    )
    tracker.seed()
    return tracker


def test_only_processes_of_the_target_namespace_are_reported(ns_proc: NsProc) -> None:
    tracker = tracker_for(ns_proc)
    for parent, child, ns in ((100, 101, "a"), (200, 201, "b")):
        tracker.handle(fork(parent, child))
        ns_proc.add(child, ns, ["cat", "/etc/shadow"], ppid=parent)
    start = tracker.handle(exec_(101))
    assert isinstance(start, ProcessStart) and start.process.pid == 101
    assert tracker.handle(exec_(201)) is None
    assert tracker.filtered == 1
    end = tracker.handle(exit_(101))
    assert isinstance(end, ProcessEnd) and end.process is not None
    assert end.process.args == ("cat", "/etc/shadow")
    assert tracker.handle(exit_(201)) is None  # exits follow their start
    assert isinstance(tracker.handle(exit_(100)), ProcessEnd)  # seeded in the namespace
    assert tracker.handle(exit_(200)) is None


def test_without_a_namespace_everything_is_reported(ns_proc: NsProc) -> None:
    tracker = ProcessTracker(ns_proc.fake.procfs(), HashCache(), own_pid=777)
    tracker.seed()
    tracker.handle(fork(200, 201))
    ns_proc.add(201, "b", ["id"], ppid=200)
    assert isinstance(tracker.handle(exec_(201)), ProcessStart)
    assert tracker.namespaces == {}  # no namespace reads at all


def test_a_process_gone_before_its_namespace_is_read_inherits_its_parents(
    ns_proc: NsProc,
) -> None:
    tracker = tracker_for(ns_proc)
    tracker.handle(fork(100, 102))  # /proc/102 never exists: exited before the read
    tracker.handle(fork(200, 202))
    start = tracker.handle(exec_(102))
    assert isinstance(start, ProcessStart) and start.partial
    assert tracker.handle(exec_(202)) is None
    assert isinstance(tracker.handle(exit_(102)), ProcessEnd)
    assert tracker.handle(exit_(202)) is None


def test_a_launcher_names_the_namespace_of_a_process_gone_too_early(ns_proc: NsProc) -> None:
    """nsenter in namespace b switching into a, then exec + exit before the read: the
    launcher's argv (its previous image) attributes the new image to a."""
    ns_proc.add(300, "b", ["nsenter", f"--net={ns_proc.files['a']}", "id"], ppid=200)
    tracker = tracker_for(ns_proc)
    ns_proc.fake.remove(300)
    start = tracker.handle(exec_(300))
    assert isinstance(start, ProcessStart) and start.partial
    assert isinstance(tracker.handle(exit_(300)), ProcessEnd)
    b_tracker = tracker_for(ns_proc, "b")
    assert b_tracker.handle(exec_(300)) is None  # and not to b, where it started


def test_a_launcher_belongs_where_it_was_started_even_after_its_setns(ns_proc: NsProc) -> None:
    """`nsenter --net=b` forked in a: by the time /proc is read it may already be in b. The
    launcher itself is attributed to a; the command it execs next to b; a nested launcher
    to the namespace the outer one switched into."""
    to_b = ["nsenter", f"--net={ns_proc.files['b']}", "id"]
    trackers = {ns: tracker_for(ns_proc, ns) for ns in ("a", "b")}
    for tracker in trackers.values():
        tracker.handle(fork(100, 400))
    ns_proc.add(400, "b", to_b, ppid=100)  # already switched when read
    assert isinstance(trackers["a"].handle(exec_(400)), ProcessStart)
    assert trackers["b"].handle(exec_(400)) is None
    ns_proc.fake.remove(400)
    ns_proc.add(400, "b", ["nsenter", f"--net={ns_proc.files['a']}", "id"], ppid=100)
    assert trackers["a"].handle(exec_(400)) is None  # nested: started in b
    assert isinstance(trackers["b"].handle(exec_(400)), ProcessStart)
    ns_proc.fake.remove(400)
    ns_proc.add(400, "a", ["id"], ppid=100)
    assert isinstance(trackers["a"].handle(exec_(400)), ProcessStart)
    assert trackers["b"].handle(exec_(400)) is None


def test_launcher_argv_parsing(tmp_path: Path) -> None:
    target = tmp_path / "ns"
    target.write_text("")
    expected = netns.namespace_id(target)
    assert netns.launcher_namespace(["nsenter", f"--net={target}", "sh"]) == expected
    assert netns.launcher_namespace(["/usr/bin/nsenter", f"-n{target}", "sh"]) == expected
    assert netns.launcher_namespace(["nsenter", "-t", "1", "-n", "sh"]) is None
    assert netns.launcher_namespace(["ip", "-all", "netns", "exec", "sh"]) is None
    assert netns.launcher_namespace(["ip", "netns", "exec", "../etc", "sh"]) is None
    assert netns.launcher_namespace(["ip", "netns", "exec", "skm-na-none-such", "sh"]) is None
    assert netns.launcher_namespace(["sh", "-c", "ip netns exec x"]) is None


def test_enter_refuses_a_bad_name_and_a_second_thread(namespaces: list[str]) -> None:
    with pytest.raises(ConfigError, match="bad network namespace"):
        netns.netns_path("../x")
    with pytest.raises(ConfigError, match="no network namespace"):
        netns.netns_path("skm-na-none-such")
    caught: list[BaseException] = []
    before = netns.current_namespace()

    def attempt() -> None:
        try:
            netns.enter(NS_B)
        except ConfigError as exc:
            caught.append(exc)

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    assert caught, "enter() from a second thread must fail"
    assert "single-threaded" in str(caught[0])
    assert netns.current_namespace() == before


# -- live: real namespaces, collector, agent ------------------------------------------------
@dataclass
class Lab:
    data_dir: Path
    port: int
    agent: subprocess.Popen[bytes]

    def events(self, kind: str) -> list[dict[str, Any]]:
        from collector.models import EventQuery
        from collector.store.sqlite import SqliteStore

        store = SqliteStore(self.data_dir / "sekimori.db")
        try:
            return store.query_events(EventQuery(kinds=(kind,), limit=100_000))
        finally:
            store.close()


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def enroll(
    url: str,
    data_dir: Path,
    state_dir: Path,
    prefix: tuple[str, ...] = (),
    options: tuple[str, ...] = (),
) -> subprocess.CompletedProcess[str]:
    """``python -m agents enroll`` as an operator runs it, after ``prefix`` (ip netns exec)."""
    from collector.registry import Registry

    registry = Registry(data_dir / "registry.db")
    try:
        token = registry.create_token(ttl=300, uses=1)
    finally:
        registry.close()
    argv = [*prefix, sys.executable, "-m", "agents", "enroll", url, "-"]
    argv += ["--ca", str(data_dir / "ca.pem"), "--state-dir", str(state_dir), *options]
    return subprocess.run(
        argv, input=token + "\n", capture_output=True, text=True, check=False, timeout=60
    )


def in_ns_listening(namespace: str, port: int) -> bool:
    probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), 1).close()"
    done = subprocess.run(
        ["ip", "netns", "exec", namespace, sys.executable, "-c", probe],
        capture_output=True,
        check=False,
        timeout=30,
    )
    return done.returncode == 0


@pytest.fixture(scope="module")
def namespaces() -> Iterator[list[str]]:
    """Two fresh namespaces with loopback up; A also has a /32 address on lo."""
    assert os.geteuid() == 0, "netns agent tests need root (ip netns, process connector)"
    made: list[str] = []
    try:
        for name in (NS_A, NS_B):
            ip("netns", "add", name)
            made.append(name)
            ip("-n", name, "link", "set", "lo", "up")
        ip("-n", NS_A, "addr", "add", f"{NS_A_ADDRESS}/32", "dev", "lo")
        yield made
    finally:
        for name in made:
            subprocess.run(["ip", "netns", "del", name], check=False, timeout=30)


@pytest.fixture(scope="module")
def lab(namespaces: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    tmp = tmp_path_factory.mktemp("netns")
    started: list[subprocess.Popen[bytes]] = []
    logs = {name: open(tmp / f"{name}.log", "wb") for name in ("collector", "agent")}  # noqa: SIM115
    try:
        data_dir, port = tmp / "collector", free_port()
        collector = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                NS_A,
                SEKIMORI,
                "collector",
                "run",
                "--data-dir",
                str(data_dir),
                "--port",
                str(port),
            ],
            stdout=logs["collector"],
            stderr=subprocess.STDOUT,
        )
        started.append(collector)
        wait_for(lambda: in_ns_listening(NS_A, port), "the collector inside the namespace", 60)
        url = f"https://127.0.0.1:{port}"
        done = enroll(url, data_dir, tmp / "agent", prefix=("ip", "netns", "exec", NS_A))
        assert done.returncode == 0, done.stdout + done.stderr
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agents",
                "--state-dir",
                str(tmp / "agent"),
                "--netns",
                NS_A,
                "--name",
                "pc-a",
                "--heartbeat-interval",
                "1",
                "--network-interval",
                "0.2",
            ],
            stdout=logs["agent"],
            stderr=subprocess.STDOUT,
        )
        started.append(agent)
        lab = Lab(data_dir, port, agent)
        wait_for(
            lambda: (data_dir / "sekimori.db").exists() and lab.events("heartbeat"),
            "the namespaced agent's first events",
            60,
        )
        yield lab
    finally:
        for process in reversed(started):
            stop(process)
        for name, handle in logs.items():
            handle.close()
            text = (tmp / f"{name}.log").read_text(errors="replace")
            sys.stderr.write(f"--- {name}.log\n{text[-3000:]}\n")


def _with_marker(events: list[dict[str, Any]], marker: str) -> list[dict[str, Any]]:
    return [e for e in events if marker in " ".join(e.get("process", {}).get("args", []))]


def test_agent_reports_processes_of_its_namespace_only(lab: Lab) -> None:
    marker = f"skm-na-{uuid.uuid4().hex}"
    script = "sleep 0.3; : {}"
    subprocess.run(["sh", "-c", script.format(f"{marker}-root")], check=True)
    subprocess.run(
        ["ip", "netns", "exec", NS_B, "sh", "-c", script.format(f"{marker}-b")], check=True
    )
    subprocess.run(
        ["ip", "netns", "exec", NS_A, "sh", "-c", script.format(f"{marker}-a")], check=True
    )
    starts = wait_for(
        lambda: _with_marker(lab.events("process_start"), f"{marker}-a"), "the start in A"
    )
    ends = wait_for(lambda: _with_marker(lab.events("process_end"), f"{marker}-a"), "its end")
    assert [e["process"]["args"] for e in starts] == [["sh", "-c", script.format(f"{marker}-a")]]
    assert starts[0]["host"]["name"] == "pc-a"
    assert starts[0]["host"]["ip"] == [NS_A_ADDRESS]  # the namespace's addresses, not the host's
    assert ends[0]["process"]["pid"] == starts[0]["process"]["pid"]
    # Everything before the A process was handled first (one ordered stream): not reported.
    everything = lab.events("process_start") + lab.events("process_end")
    others = [e["process"].get("args") for e in _with_marker(everything, marker)]
    assert all(args[:2] == ["sh", "-c"] and f"{marker}-a" in args[2] for args in others), others


def test_agent_reports_listeners_of_its_namespace_only(lab: Lab) -> None:
    port, root_only = free_port(), free_port()
    listeners = []
    for number in (port, root_only):  # in the initial namespace, owned by this test process
        server = socket.socket()
        server.bind(("127.0.0.1", number))
        server.listen()
        listeners.append(server)
    code = (
        f"import socket, time; s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); "
        "time.sleep(30)"
    )
    inside = subprocess.Popen(["ip", "netns", "exec", NS_A, sys.executable, "-c", code])
    try:
        (event,) = wait_for(
            lambda: [e for e in lab.events("network_listen") if e["source"]["port"] == port],
            "the listener inside the namespace",
        )
        assert event["process"]["pid"] == inside.pid  # ip netns exec execs python in place
        assert event["source"]["ip"] == "127.0.0.1"
        seen = lab.events("network_listen")
        assert not [e for e in seen if e["source"]["port"] == root_only]
        assert not [e for e in seen if e.get("process", {}).get("pid") == os.getpid()]
        collector_port = [e for e in seen if e["source"]["port"] == lab.port]
        assert collector_port, "the collector's listener (inside the namespace) was not seen"
    finally:
        inside.kill()
        inside.wait()
        for server in listeners:
            server.close()


def test_agent_ships_through_the_namespace(lab: Lab) -> None:
    with socket.socket() as probe:  # from the initial namespace the collector is unreachable
        assert probe.connect_ex(("127.0.0.1", lab.port)) != 0
    beats = wait_for(
        lambda: [e for e in lab.events("heartbeat") if f"netns={NS_A}" in e.get("message", "")],
        "a heartbeat naming the namespace",
    )
    assert beats[0]["host"]["name"] == "pc-a"
    assert lab.agent.poll() is None, "the agent died"


def test_enroll_with_the_netns_option(lab: Lab, tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{lab.port}"
    outside = enroll(url, lab.data_dir, tmp_path / "outside")
    assert outside.returncode != 0, "enrolled from a namespace where no collector listens"
    done = enroll(
        url, lab.data_dir, tmp_path / "inside", options=("--netns", NS_A, "--name", "pc-a2")
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "enrolled as agent" in done.stdout


def test_agent_under_ip_netns_exec_explains_the_option(tmp_path: Path, lab: Lab) -> None:
    done = subprocess.run(
        [
            "ip",
            "netns",
            "exec",
            NS_B,
            sys.executable,
            "-m",
            "agents",
            "--state-dir",
            str(tmp_path / "agent"),
            "--collector",
            "https://127.0.0.1:9",
            "--ca",
            str(lab.data_dir / "ca.pem"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "--netns" in done.stderr


def dns_query(name: str) -> bytes:
    labels = b"".join(bytes([len(part)]) + part.encode() for part in name.split("."))
    return struct.pack("!HHHHHH", 0x5EC1, 0x0100, 1, 0, 0, 0) + labels + b"\0\0\1\0\1"


def test_sensor_only_agent_watches_the_namespace_interface(lab: Lab, tmp_path: Path) -> None:
    """--sensor-interface lo with --netns: the namespace's loopback, not the host's."""
    url = f"https://127.0.0.1:{lab.port}"
    state = tmp_path / "sensor"
    done = enroll(url, lab.data_dir, state, options=("--netns", NS_A, "--name", "sensor-a"))
    assert done.returncode == 0, done.stdout + done.stderr
    log = open(tmp_path / "sensor.log", "wb")  # noqa: SIM115 - closed below
    sensor = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agents",
            "--state-dir",
            str(state),
            "--netns",
            NS_A,
            "--name",
            "sensor-a",
            "--sensor-interface",
            "lo",
            "--flow-idle-timeout",
            "1",
            "--no-process-events",
            "--no-socket-events",
            "--heartbeat-interval",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    marker = f"skm-na-{uuid.uuid4().hex}"
    send = "import socket, sys; socket.socket(2, 2).sendto(bytes.fromhex(sys.argv[1]), ('127.0.0.1', 53))"
    inside = dns_query(f"{marker}-a.example").hex()

    def seen() -> list[dict[str, Any]]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as root_side:
            root_side.sendto(dns_query(f"{marker}-root.example"), ("127.0.0.1", 53))
        subprocess.run(
            ["ip", "netns", "exec", NS_A, sys.executable, "-c", send, inside],
            check=True,
            timeout=30,
        )
        return [e for e in lab.events("dns") if marker in e["dns"]["question"]["name"]]

    try:
        events = wait_for(seen, "the sensor's DNS event from inside the namespace", 60)
        assert {e["dns"]["question"]["name"] for e in events} == {f"{marker}-a.example"}
        assert {e["host"]["name"] for e in events} == {"sensor-a"}
        assert events[0]["sekimori"]["sensor"]["interface"] == "lo"
        others = lab.events("process_start") + lab.events("network_listen")
        assert not [e for e in others if e["host"]["name"] == "sensor-a"]
        assert sensor.poll() is None, "the sensor agent died"

        def counted() -> list[dict[str, Any]]:  # the heartbeat carries the sensor's counters
            return [
                e
                for e in lab.events("heartbeat")
                if e["host"]["name"] == "sensor-a"
                and re.search(r"sensor_packets=[1-9]", e.get("message", ""))
                and "sensor_kernel_drops=" in e["message"]
            ]

        wait_for(counted, "a sensor heartbeat with a non-zero packet count", 30)
    finally:
        stop(sensor)
        log.close()
        sys.stderr.write((tmp_path / "sensor.log").read_text(errors="replace")[-2000:])
