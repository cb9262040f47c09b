from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.errors import ConfigError
from agents.events import EventBuilder
from agents.spool import Spool
from agents.spool_format import HEADER, encode_record, scan
from tests.agents.agent_testkit import check_contract


def hb(builder: EventBuilder, i: int) -> dict[str, Any]:
    return builder.heartbeat(f"event {i:04d} " + "x" * 100)


def open_spool(path: Path, builder: EventBuilder, **kw: Any) -> Spool:
    kw.setdefault("max_bytes", 1 << 20)
    kw.setdefault("segment_bytes", 1 << 16)
    return Spool(path, make_gap=builder.spool_gap, **kw)


def all_events(spool: Spool) -> list[dict[str, Any]]:
    batch = spool.read_batch(10**6, 1 << 30)
    return [] if batch is None else [json.loads(p) for p in batch.payloads]


def test_append_assigns_contiguous_seqs_and_seals(tmp_path: Path, builder: EventBuilder) -> None:
    spool = open_spool(tmp_path, builder)
    assert spool.append([hb(builder, i) for i in range(3)]) == [1, 2, 3]
    events = all_events(spool)
    assert [e["sekimori"]["seq"] for e in events] == [1, 2, 3]
    for event in events:
        check_contract(event)
    assert spool.pending == 3


def test_batches_respect_limits_and_ack_removes(tmp_path: Path, builder: EventBuilder) -> None:
    spool = open_spool(tmp_path, builder, segment_bytes=2048, max_bytes=1 << 20)
    spool.append([hb(builder, i) for i in range(50)])
    segments_before = len(list(tmp_path.glob("*.seg")))
    assert segments_before > 3
    batch = spool.read_batch(10, 1 << 20)
    assert batch is not None and (batch.first_seq, batch.last_seq) == (1, 10)
    small = spool.read_batch(100, 1500)
    assert small is not None and 1 <= len(small.payloads) < 10
    spool.ack(30)
    assert spool.pending == 20
    assert len(list(tmp_path.glob("*.seg"))) < segments_before
    nxt = spool.read_batch(1000, 1 << 20)
    assert nxt is not None and (nxt.first_seq, nxt.last_seq) == (31, 50)
    spool.ack(10)  # stale ack is ignored
    spool.ack(10**9)  # never beyond what exists
    assert spool.acked_seq == 50 and spool.pending == 0
    assert spool.read_batch(10, 1 << 20) is None


def test_restart_keeps_pending_and_continues_seq(tmp_path: Path, builder: EventBuilder) -> None:
    spool = open_spool(tmp_path, builder)
    spool.append([hb(builder, i) for i in range(5)])
    spool.ack(2)
    spool.close()
    again = open_spool(tmp_path, builder)
    assert [e["sekimori"]["seq"] for e in all_events(again)] == [3, 4, 5]
    assert again.append([hb(builder, 9)]) == [6]
    again.ack(6)
    again.close()
    assert not list(tmp_path.glob("*.seg"))
    third = open_spool(tmp_path, builder)  # no segments left: seq comes from state.json
    assert third.append([hb(builder, 10)]) == [7]


def test_restart_without_close_after_crash(tmp_path: Path, builder: EventBuilder) -> None:
    spool = open_spool(tmp_path, builder)
    spool.append([hb(builder, i) for i in range(4)])
    # no close(): simulate a crash; append already fsynced
    again = open_spool(tmp_path, builder)
    assert [e["sekimori"]["seq"] for e in all_events(again)] == [1, 2, 3, 4]
    assert again.append([hb(builder, 5)]) == [5]


def test_bound_drops_oldest_with_exact_gap_event(tmp_path: Path, builder: EventBuilder) -> None:
    spool = open_spool(tmp_path, builder, segment_bytes=2048, max_bytes=8192)
    record_size = len(encode_record(1, b"x")) - 1 + len(json.dumps(hb(builder, 0)).encode())
    for i in range(100):
        spool.append([hb(builder, i)])
    events = all_events(spool)
    gaps = [e for e in events if e["sekimori"]["kind"] == "telemetry_gap"]
    assert spool.total_bytes <= 8192 + 1024 * len(gaps)  # plus the gap records themselves
    kept = [e["sekimori"]["seq"] for e in events if e["sekimori"]["kind"] == "heartbeat"]
    assert gaps, f"record size {record_size}"
    dropped_total = 0
    for gap in gaps:
        check_contract(gap)
        info = gap["sekimori"]["gap"]
        assert info["reason"] == "spool_full"
        assert info["count"] == info["last_seq"] - info["first_seq"] + 1
        dropped_total += info["count"]
    # every seq ever assigned is either still here or named by exactly one gap still here
    # (a dropped gap event is announced again, with its range, by a later one)
    kept_all = {e["sekimori"]["seq"] for e in events}
    named = [
        s
        for g in gaps
        for s in range(g["sekimori"]["gap"]["first_seq"], g["sekimori"]["gap"]["last_seq"] + 1)
    ]
    assert len(named) == len(set(named)) == dropped_total
    assert kept_all | set(named) == set(range(1, spool.next_seq))
    assert kept == sorted(kept)
    assert spool.next_seq - 1 == spool.stats.appended + spool.stats.gap_events


def test_bound_gap_counts_only_unacked(tmp_path: Path, builder: EventBuilder) -> None:
    spool = open_spool(tmp_path, builder, segment_bytes=2048, max_bytes=4096)
    for i in range(100):
        spool.append([hb(builder, i)])
        if len(list(tmp_path.glob("*.seg"))) == 2:
            break
    oldest = sorted(tmp_path.glob("*.seg"))[0]
    first_segment = [r.seq for r in scan(oldest.read_bytes()).records]
    assert len(first_segment) >= 2
    spool.ack(first_segment[0])  # the first record is acked, the rest of that segment not
    for i in range(100):
        spool.append([hb(builder, i)])
        if spool.stats.dropped:
            break
    gap = next(e for e in all_events(spool) if e["sekimori"]["kind"] == "telemetry_gap")
    info = gap["sekimori"]["gap"]
    assert info["first_seq"] == first_segment[1]
    assert info["last_seq"] == first_segment[-1]
    assert info["count"] == len(first_segment) - 1 == spool.stats.dropped


def _corrupt(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_bit_flip_skips_one_record_and_reports_exact_gap(
    tmp_path: Path, builder: EventBuilder
) -> None:
    spool = open_spool(tmp_path, builder)
    spool.append([hb(builder, i) for i in range(5)])
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    positions = scan(segment.read_bytes()).records
    _corrupt(segment, positions[2].payload_offset + 10)  # seq 3's payload
    again = open_spool(tmp_path, builder)
    assert again.stats.corrupt_regions == 1
    events = all_events(again)
    seqs = [e["sekimori"]["seq"] for e in events]
    assert seqs == [1, 2, 4, 5, 6]
    gap = events[-1]
    check_contract(gap)
    assert gap["sekimori"]["gap"] == {
        "first_seq": 3,
        "last_seq": 3,
        "count": 1,
        "reason": "spool_corrupt",
    }


def test_torn_tail_is_cut_and_spool_keeps_working(tmp_path: Path, builder: EventBuilder) -> None:
    spool = open_spool(tmp_path, builder)
    spool.append([hb(builder, i) for i in range(3)])
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    whole = segment.read_bytes()
    segment.write_bytes(whole + encode_record(4, b'{"half": "a rec')[: HEADER.size + 5])
    again = open_spool(tmp_path, builder)
    assert again.stats.corrupt_regions == 1
    assert segment.stat().st_size == len(whole)
    assert [e["sekimori"]["seq"] for e in all_events(again)] == [1, 2, 3]
    assert again.append([hb(builder, 9)]) == [4]
    again.close()
    third = open_spool(tmp_path, builder)
    assert third.stats.corrupt_regions == 0
    assert [e["sekimori"]["seq"] for e in all_events(third)] == [1, 2, 3, 4]


def test_garbage_header_and_bad_state_file(tmp_path: Path, builder: EventBuilder) -> None:
    spool = open_spool(tmp_path, builder)
    spool.append([hb(builder, i) for i in range(3)])
    spool.close()
    segment = next(tmp_path.glob("*.seg"))
    _corrupt(segment, 0)  # magic of seq 1
    (tmp_path / "state.json").write_text("{not json")
    again = open_spool(tmp_path, builder)
    events = all_events(again)
    assert [e["sekimori"]["seq"] for e in events] == [2, 3, 4]
    assert events[-1]["sekimori"]["gap"]["first_seq"] == 1


def test_fsync_interval_policy_still_syncs_before_reading(
    tmp_path: Path, builder: EventBuilder
) -> None:
    spool = open_spool(tmp_path, builder, fsync_interval=3600)
    spool.append([hb(builder, 1)])
    spool.append([hb(builder, 2)])
    assert spool.read_batch(10, 1 << 20) is not None
    assert not spool._dirty


def test_bound_must_hold_two_segments(tmp_path: Path, builder: EventBuilder) -> None:
    with pytest.raises(ConfigError):
        open_spool(tmp_path, builder, max_bytes=1000, segment_bytes=1000)


class FailingHandle:
    def __init__(self, inner: Any, fail_on: int) -> None:
        self.inner = inner
        self.calls = 0
        self.fail_on = fail_on

    def write(self, data: bytes) -> int:
        self.calls += 1
        if self.calls == self.fail_on:
            self.inner.write(data[:7])  # a torn write, then the error
            raise OSError(28, "No space left on device")
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_write_failure_keeps_the_segment_clean(tmp_path: Path, builder: EventBuilder) -> None:
    spool = open_spool(tmp_path, builder)
    spool.append([hb(builder, 0)])
    spool._handle = FailingHandle(spool._handle, fail_on=3)
    events = [hb(builder, i) for i in range(1, 6)]
    start = spool.next_seq
    with pytest.raises(OSError):
        spool.append(events)
    written = spool.next_seq - start
    assert written == 2
    assert spool.append(events[written:]) == [4, 5, 6]
    spool.close()
    again = open_spool(tmp_path, builder)
    assert again.stats.corrupt_regions == 0
    assert [e["sekimori"]["seq"] for e in all_events(again)] == [1, 2, 3, 4, 5, 6]
    assert [e["message"][:10] for e in all_events(again)] == [f"event {i:04d}" for i in range(6)]


class _Killed(BaseException):
    """Stands in for SIGKILL at one exact point (nothing after it runs)."""


@pytest.mark.parametrize("killed_in", ["_save_state", "unlink"])
def test_a_kill_during_ack_never_reuses_sequence_numbers(
    tmp_path: Path, builder: EventBuilder, monkeypatch: pytest.MonkeyPatch, killed_in: str
) -> None:
    spool = open_spool(tmp_path, builder)
    assert spool.append([hb(builder, i) for i in range(10)]) == list(range(1, 11))
    if killed_in == "_save_state":  # before the state reached the disk

        def die(*_a: Any, **_k: Any) -> None:
            raise _Killed

        monkeypatch.setattr(Spool, "_save_state", die)
    else:  # state saved, acked files not yet removed
        real_unlink = Path.unlink

        def die_on_segment(self: Path, *a: Any, **k: Any) -> None:
            if self.suffix == ".seg":
                raise _Killed
            real_unlink(self, *a, **k)

        monkeypatch.setattr(Path, "unlink", die_on_segment)
    with pytest.raises(_Killed):
        spool.ack(10)
    monkeypatch.undo()
    restarted = open_spool(tmp_path, builder)
    assert restarted.append([hb(builder, 99)]) == [11]
    batch = restarted.read_batch(100, 1 << 20)
    assert batch is not None
    seqs = [json.loads(p)["sekimori"]["seq"] for p in batch.payloads]
    if killed_in == "_save_state":  # the ack never landed: resend 1..10 (idempotent), then 11
        assert seqs == list(range(1, 12))
    else:  # the ack landed: only the new event is pending
        assert seqs == [11]
