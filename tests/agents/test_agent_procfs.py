from __future__ import annotations

import struct
from pathlib import Path

from agents.procfs import HashCache, join_args, parse_stat
from agents.sources.netlink import (
    CN_IDX_PROC,
    PROC_EVENT_EXEC,
    PROC_EVENT_EXIT,
    PROC_EVENT_FORK,
    parse_message,
    subscribe_message,
)
from tests.agents.agent_testkit import FakeProc


def test_parse_stat_handles_parentheses_and_spaces_in_comm() -> None:
    rest = " ".join(["S", "42"] + ["0"] * 17 + ["777"] + ["0"] * 5)
    stat = parse_stat(f"100 (evil) (x y) {rest}")
    assert stat is not None
    assert (stat.comm, stat.ppid, stat.starttime_ticks) == ("evil) (x y", 42, 777)
    assert parse_stat("garbage") is None


def test_join_args_quotes_like_a_shell() -> None:
    assert join_args(["sh", "-c", "echo aWQ= | base64 -d | sh"]) == (
        "sh -c 'echo aWQ= | base64 -d | sh'"
    )
    assert join_args(["printf", ""]) == "printf ''"


def test_process_reads_everything_from_virtual_proc(fake_proc: FakeProc) -> None:
    fake_proc.add(
        4242,
        exe="/usr/bin/dash",
        args=["sh", "-c", "id"],
        ppid=4000,
        cwd="/home/alice",
        starttime=500,
    )
    procfs = fake_proc.procfs()
    info = procfs.process(4242)
    assert info.executable == "/usr/bin/dash"
    assert info.args == ("sh", "-c", "id")
    assert info.command_line == "sh -c id"
    assert info.cwd == "/home/alice"
    assert (info.uid, info.ppid, info.comm, info.name) == (1000, 4000, "dash", "dash")
    assert info.start == 1700000000 + 500 / 100
    assert info.complete
    assert procfs.user_name(1000) == "alice"
    assert procfs.pids() == [4242]


def test_missing_process_gives_empty_info(fake_proc: FakeProc) -> None:
    info = fake_proc.procfs().process(999)
    assert info.executable is None and info.args == () and info.ppid is None
    assert not info.complete


def test_non_utf8_names_become_escapes(fake_proc: FakeProc) -> None:
    base = fake_proc.add(7, exe="/tmp/x", args=["a"], ppid=1)
    (base / "cmdline").write_bytes(b"caf\xe9\0-x\0")
    info = fake_proc.procfs().process(7)
    assert info.args == ("caf\\xe9", "-x")
    info.command_line.encode("utf-8")  # type: ignore[union-attr]


def test_hash_cache_reads_each_file_once(tmp_path: Path) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"\x7fELF" + b"x" * 1000)
    cache = HashCache()
    first = cache.sha256(tmp_path / "missing", binary)
    assert first is not None and len(first) == 64
    assert cache.sha256(binary) == first
    assert cache.hashed == 1
    binary.write_bytes(b"changed")  # new size/mtime -> new key
    assert cache.sha256(binary) != first
    assert cache.hashed == 2
    assert cache.sha256(tmp_path / "missing") is None


def _datagram(what: int, body: bytes) -> bytes:
    event = struct.pack("=IIQ", what, 0, 123456789) + body
    cn = struct.pack("=IIIIHH", CN_IDX_PROC, 1, 0, 0, len(event), 0) + event
    return struct.pack("=IHHII", 16 + len(cn), 3, 0, 0, 0) + cn


def test_parse_fork_exec_exit_datagrams() -> None:
    fork = parse_message(_datagram(PROC_EVENT_FORK, struct.pack("=IIII", 10, 10, 11, 11)))
    assert fork[0].what == PROC_EVENT_FORK
    assert (fork[0].parent_tgid, fork[0].pid, fork[0].tgid) == (10, 11, 11)
    exe = parse_message(_datagram(PROC_EVENT_EXEC, struct.pack("=II", 11, 11)))
    assert (exe[0].what, exe[0].tgid, exe[0].timestamp_ns) == (PROC_EVENT_EXEC, 11, 123456789)
    old_exit = parse_message(_datagram(PROC_EVENT_EXIT, struct.pack("=IIII", 11, 11, 256, 17)))
    assert (old_exit[0].exit_code, old_exit[0].parent_tgid) == (256, 0)
    new_exit = parse_message(
        _datagram(PROC_EVENT_EXIT, struct.pack("=IIIIII", 11, 11, 9, 17, 10, 10))
    )
    assert (new_exit[0].exit_code, new_exit[0].parent_tgid) == (9, 10)


def test_parse_ignores_other_events_and_garbage() -> None:
    uid_change = _datagram(0x4, struct.pack("=IIII", 1, 1, 0, 0))
    assert parse_message(uid_change) == []
    assert parse_message(b"\x01\x02") == []
    two = _datagram(PROC_EVENT_EXEC, struct.pack("=II", 5, 5)) + _datagram(
        PROC_EVENT_EXEC, struct.pack("=II", 6, 6)
    )
    assert [e.tgid for e in parse_message(two)] == [5, 6]


def test_subscribe_message_layout() -> None:
    msg = subscribe_message()
    length, msg_type = struct.unpack_from("=IH", msg)
    assert length == len(msg) == 16 + 20 + 4
    assert msg_type == 3
    assert struct.unpack_from("=II", msg, 16) == (CN_IDX_PROC, 1)
    assert struct.unpack_from("=I", msg, 36) == (1,)
