"""Group commit: concurrent event writes share a transaction without changing what is stored
or what each caller is told (``collector.store.group_commit``)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agents.errors import StoreError
from collector.models import WriteResult
from collector.store.base import EncodedEvent, encode_event
from collector.store.group_commit import GroupCommit
from collector.store.sqlite import SqliteStore
from tests.conftest import build_event


def _encoded(first: int, count: int) -> list[EncodedEvent]:
    return [encode_event(build_event(seq=seq)) for seq in range(first, first + count)]


class _GatedWriter:
    """``write_many`` that blocks the first group until ``release`` is set, so the callers
    arriving meanwhile must queue up and form the next group."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()  # the first group's write has started
        self.groups: list[list[int]] = []
        self.fail_next = False

    def __call__(self, batches: list[Sequence[EncodedEvent]]) -> list[WriteResult]:
        if not self.groups:
            self.entered.set()
            assert self.release.wait(10)
        self.groups.append([len(b) for b in batches])
        if self.fail_next:
            self.fail_next = False
            raise StoreError("disk full")
        return [WriteResult(frozenset(e.id for e in b), 0) for b in batches]


def _queued(group: GroupCommit, count: int) -> bool:
    with group._cond:
        return len(group._pending) == count


def test_waiting_batches_form_one_group_and_each_caller_gets_its_own_result() -> None:
    writer = _GatedWriter()
    group = GroupCommit(writer)
    batches = [_encoded(1 + 10 * n, n + 1) for n in range(5)]
    with ThreadPoolExecutor(5) as pool:
        first = pool.submit(group.write, batches[0])
        assert writer.entered.wait(10)  # the first caller leads and sits in the gated write
        rest = [pool.submit(group.write, b) for b in batches[1:]]
        while not _queued(group, 4):
            pass
        writer.release.set()
        results = [first.result(10)] + [f.result(10) for f in rest]
    assert writer.groups == [[1], [2, 3, 4, 5]]
    for batch, result in zip(batches, results, strict=True):
        assert result.new_ids == frozenset(e.id for e in batch)
    assert (group.groups, group.batches) == (2, 5)


def test_a_group_is_bounded_by_max_events() -> None:
    writer = _GatedWriter()
    group = GroupCommit(writer, max_events=5)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(group.write, _encoded(1, 1))
        assert writer.entered.wait(10)
        rest = [pool.submit(group.write, _encoded(10 * n, 3)) for n in range(1, 4)]
        while not _queued(group, 3):
            pass
        writer.release.set()
        for future in [first, *rest]:
            future.result(10)
    assert writer.groups[0] == [1]
    assert all(sum(sizes) <= 5 for sizes in writer.groups[1:])
    assert sorted(s for sizes in writer.groups[1:] for s in sizes) == [3, 3, 3]


def test_a_failed_group_fails_every_caller_and_the_next_write_works() -> None:
    writer = _GatedWriter()
    group = GroupCommit(writer)
    with ThreadPoolExecutor(3) as pool:
        first = pool.submit(group.write, _encoded(1, 1))
        assert writer.entered.wait(10)
        writer.fail_next = True  # the gated first group fails
        second = pool.submit(group.write, _encoded(5, 1))
        while not _queued(group, 1):
            pass
        writer.release.set()
        with pytest.raises(StoreError, match="disk full"):
            first.result(10)
        assert second.result(10).inserted == 1  # its own group, after the failed one
    assert group.write(_encoded(9, 2)).inserted == 2


def test_concurrent_sqlite_writes_store_each_event_once_and_group(tmp_path: Path) -> None:
    """Resends racing their originals: every id is new for exactly one caller, and the
    store holds each event once."""
    store = SqliteStore(tmp_path / "g.db")
    batches = [_encoded(1 + 20 * n, 20) for n in range(30)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(store.write_encoded_events, batches + batches + batches))
    new = [event_id for result in results for event_id in result.new_ids]
    assert len(new) == len(set(new)) == 600
    assert sum(result.duplicates for result in results) == 1200
    assert store.count_events() == 600
    assert store.group_commits[1] == 90
    store.close()


def test_one_group_with_an_id_twice_is_written_as_if_in_order(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "o.db")
    a, b = _encoded(1, 3), _encoded(3, 3)  # seq 3 is in both
    first, second = store._write_groups([a, b])
    assert first.inserted == 3 and first.duplicates == 0
    assert second.inserted == 2 and second.duplicates == 1
    assert a[2].id not in second.new_ids
    assert store.count_events() == 5
    store.close()
