from __future__ import annotations

import socket
import struct

import pytest

from agents.events import EventBuilder
from agents.schema import seal
from agents.sources.base import Connection, Listen
from agents.sources.netparse import decode_address, parse_table
from agents.sources.sockets import SocketsSource
from tests.agents.agent_testkit import FakeProc, check_contract, net_row

OWN = 777
LISTEN, ESTABLISHED, SYN_SENT, TIME_WAIT, CLOSE = "0A", "01", "02", "06", "07"


def a4(ip: str, port: int) -> str:
    return f"{struct.unpack('=I', socket.inet_aton(ip))[0]:08X}:{port:04X}"


def a6(ip: str, port: int) -> str:
    words = struct.unpack("=4I", socket.inet_pton(socket.AF_INET6, ip))
    return "".join(f"{w:08X}" for w in words) + f":{port:04X}"


def test_decode_addresses() -> None:
    assert decode_address(a4("127.0.0.1", 8080)) == ("127.0.0.1", 8080)
    assert decode_address(a6("2001:db8::1", 443)) == ("2001:db8::1", 443)
    assert decode_address(a6("::ffff:10.0.0.9", 22)) == ("10.0.0.9", 22)
    assert decode_address(a6("::", 0)) == ("::", 0)


def test_parse_table_skips_malformed_lines() -> None:
    text = (
        "header\n   0: nonsense\n"
        + "   1: "
        + net_row(a4("10.0.0.1", 22), a4("0.0.0.0", 0), LISTEN, 0, 99)
        + "\n"
    )
    entries = parse_table(text, "tcp", "ipv4")
    assert len(entries) == 1 and entries[0].state == "LISTEN" and entries[0].inode == 99


@pytest.fixture
def world(fake_proc: FakeProc) -> FakeProc:
    fake_proc.add(100, exe="/usr/sbin/sshd", args=["sshd"], ppid=1, uid=0, sockets={3: 1001})
    fake_proc.add(200, exe="/usr/bin/curl", args=["curl", "x"], ppid=1, sockets={4: 2001})
    fake_proc.add(
        300, exe="/usr/sbin/sshd", args=["sshd: alice"], ppid=100, uid=0, sockets={5: 3001}
    )
    fake_proc.add(OWN, exe="/usr/bin/python3", args=["agent"], ppid=1, uid=0, sockets={6: 4001})
    fake_proc.set_net(
        "tcp",
        [
            net_row(a4("0.0.0.0", 22), a4("0.0.0.0", 0), LISTEN, 0, 1001),
            net_row(a4("10.1.0.5", 40000), a4("93.184.216.34", 443), SYN_SENT, 1000, 2001),
            net_row(a4("10.1.0.5", 22), a4("10.2.0.7", 51000), ESTABLISHED, 0, 3001),
            net_row(a4("10.1.0.5", 40100), a4("10.9.9.9", 8443), ESTABLISHED, 0, 4001),
            net_row(a4("10.1.0.5", 40200), a4("8.8.4.4", 80), TIME_WAIT, 0, 0),
        ],
    )
    fake_proc.set_net("udp", [net_row(a4("0.0.0.0", 68), a4("0.0.0.0", 0), CLOSE, 0, 5001)])
    fake_proc.set_net("tcp6", [net_row(a6("::", 8080), a6("::", 0), LISTEN, 1000, 6001)])
    return fake_proc


def test_first_poll_reports_listeners_and_connections(world: FakeProc) -> None:
    source = SocketsSource(world.procfs(), own_pid=OWN)
    records = source.poll()
    listens = {(r.transport, r.ip, r.port): r for r in records if isinstance(r, Listen)}
    conns = {(r.remote_ip, r.remote_port): r for r in records if isinstance(r, Connection)}
    assert set(listens) == {("tcp", "0.0.0.0", 22), ("udp", "0.0.0.0", 68), ("tcp", "::", 8080)}
    assert listens[("tcp", "0.0.0.0", 22)].owner is not None
    assert listens[("tcp", "0.0.0.0", 22)].owner.executable == "/usr/sbin/sshd"  # type: ignore[union-attr]
    assert all(r.initial for r in records)
    out = conns[("93.184.216.34", 443)]
    assert (out.direction, out.state, out.owner.pid) == ("egress", "SYN_SENT", 200)  # type: ignore[union-attr]
    inbound = conns[("10.2.0.7", 51000)]
    assert inbound.direction == "ingress" and inbound.owner.pid == 300  # type: ignore[union-attr]
    short = conns[("8.8.4.4", 80)]
    assert short.state == "TIME_WAIT" and short.owner is None and short.uid is None
    assert ("10.9.9.9", 8443) not in conns  # the agent's own connection


def test_each_socket_is_reported_once_and_again_after_it_comes_back(world: FakeProc) -> None:
    source = SocketsSource(world.procfs(), own_pid=OWN)
    assert len(source.poll()) == 6
    assert source.poll() == []
    # the own connection goes to TIME_WAIT (inode 0): still recognised as ours
    world.set_net(
        "tcp",
        [
            net_row(a4("0.0.0.0", 22), a4("0.0.0.0", 0), LISTEN, 0, 1001),
            net_row(a4("10.1.0.5", 40100), a4("10.9.9.9", 8443), TIME_WAIT, 0, 0),
        ],
    )
    assert source.poll() == []
    world.set_net(
        "tcp",
        [
            net_row(a4("0.0.0.0", 22), a4("0.0.0.0", 0), LISTEN, 0, 1001),
            net_row(a4("10.1.0.5", 40000), a4("93.184.216.34", 443), ESTABLISHED, 1000, 2001),
        ],
    )
    again = source.poll()
    assert len(again) == 1 and isinstance(again[0], Connection) and not again[0].initial


def test_new_listener_after_start(world: FakeProc) -> None:
    source = SocketsSource(world.procfs(), own_pid=OWN)
    source.poll()
    world.add(400, exe="/tmp/.x/nc", args=["nc", "-lvp", "4444"], ppid=200, sockets={3: 7001})
    world.set_net("tcp", [net_row(a4("0.0.0.0", 4444), a4("0.0.0.0", 0), LISTEN, 1000, 7001)])
    records = source.poll()
    assert len(records) == 1
    rec = records[0]
    assert isinstance(rec, Listen) and rec.port == 4444 and not rec.initial
    assert rec.owner is not None and rec.owner.pid == 400 and rec.owner.executable == "/tmp/.x/nc"


def test_network_events_follow_the_contract(world: FakeProc, builder: EventBuilder) -> None:
    source = SocketsSource(world.procfs(), own_pid=OWN)
    events = [builder.build(r) for r in source.poll()]
    for seq, event in enumerate(events, 1):
        event["sekimori"]["seq"] = seq
        check_contract(seal(event))
    by_action: dict[str, list[dict[str, object]]] = {}
    for event in events:
        by_action.setdefault(event["event"]["action"], []).append(event)
    assert {e["sekimori"]["kind"] for e in by_action["listen"]} == {"network_listen"}
    accepted = by_action["connection_accepted"][0]
    assert accepted["source"] == {"ip": "10.2.0.7", "port": 51000}
    assert accepted["destination"] == {"ip": "10.1.0.5", "port": 22}
    assert accepted["network"] == {"transport": "tcp", "type": "ipv4", "direction": "ingress"}
    attempted = next(
        e
        for e in by_action["connection_attempted"]
        if e["destination"] == {"ip": "93.184.216.34", "port": 443}
    )
    assert attempted["process"] == {"pid": 200, "name": "curl", "executable": "/usr/bin/curl"}
    assert attempted["user"] == {"id": "1000", "name": "alice"}
    assert attempted["tags"] == ["initial_snapshot"]


def test_records_generator_polls_until_stopped(world: FakeProc) -> None:
    import threading

    source = SocketsSource(world.procfs(), own_pid=OWN, interval=0.01)
    stop = threading.Event()
    seen = []
    for record in source.records(stop):
        seen.append(record)
        if len(seen) == 6:
            stop.set()
    assert len(seen) == 6 and source.polls >= 1


def test_check_compatible_needs_proc_net(fake_proc: FakeProc) -> None:
    from agents.errors import ConfigError

    (fake_proc.root / "net" / "tcp").unlink()
    with pytest.raises(ConfigError, match="net/tcp"):
        SocketsSource(fake_proc.procfs()).check_compatible()


def test_the_agents_own_closed_connections_are_not_reported() -> None:
    """A connection the agent opened and closed lingers in TIME_WAIT with no owner; noted in
    agents.ownconns, it is not reported (else every shipment would report itself again)."""
    from agents.ownconns import OwnConnections

    own = OwnConnections()
    source = SocketsSource(own=own)
    source.poll()  # the baseline snapshot
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        ours = socket.create_connection(("127.0.0.1", port))
        theirs = socket.create_connection(("127.0.0.1", port))
        own.note(ours)
        ours_port, theirs_port = ours.getsockname()[1], theirs.getsockname()[1]
        accepted = [server.accept()[0] for _ in range(2)]
        ours.close()  # the client closes first: its side goes to TIME_WAIT, ownerless
        theirs.close()
        for sock in accepted:
            sock.close()
        records = [r for r in source.poll() if isinstance(r, Connection)]
    local_ports = {r.local_port for r in records if r.remote_port == port}
    assert theirs_port in local_ports, records  # the check can see such sockets
    assert ours_port not in local_ports
