"""Group commit: concurrent event writes share one store transaction.

Every batch an agent sends is one ``write_encoded_events`` call. On SQLite each call is a
transaction, and a transaction's cost is mostly the pages it dirties, each written to the WAL
at commit. Concurrent agents' batches touch the same pages (the recent end of the table and of
its indices), so one commit for several batches writes them once instead of once per batch;
on files with the older random ``event.id`` index the saving is much larger
(bench/RESULTS.md). (Tried on the search stores as one bulk per group: no measurable gain.)

The first caller to find the store idle becomes the *leader*: it takes every batch waiting at
that moment (up to ``max_events``), writes them with one ``write_many`` call, hands each caller
its own ``WriteResult`` and wakes them. Callers that arrive meanwhile wait and form the next
group. A caller alone is its own group at once, so a single agent waits for nothing.

Semantics are those of the writes run one after another in arrival order: an event id given
twice in one group is new for the earlier batch and a duplicate for the later one. A failed
transaction fails every batch of the group with the same error, and none of them is written
(each agent resends).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from agents.errors import StoreError
from collector.models import WriteResult
from collector.store.base import EncodedEvent

# A group's size is bounded so one transaction (and the write lock it holds) stays short.
MAX_GROUP_EVENTS: Final = 5000

WriteMany = Callable[[list[Sequence[EncodedEvent]]], list[WriteResult]]


@dataclass(slots=True)
class _Request:
    events: Sequence[EncodedEvent]
    done: bool = False
    result: WriteResult | None = None
    error: BaseException | None = field(default=None, repr=False)


class GroupCommit:
    """Merge concurrent ``write`` calls into groups written by ``write_many`` (one result per
    batch, in order). Thread-safe; ``write_many`` is only ever called by one thread at a time."""

    def __init__(self, write_many: WriteMany, max_events: int = MAX_GROUP_EVENTS) -> None:
        self._write_many = write_many
        self._max_events = max_events
        self._cond = threading.Condition()
        self._pending: list[_Request] = []
        self._leading = False
        self.groups = 0  # transactions written (for the benchmark and tests)
        self.batches = 0  # batches written in them

    def write(self, events: Sequence[EncodedEvent]) -> WriteResult:
        request = _Request(events)
        with self._cond:
            self._pending.append(request)
            while not request.done:
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading = True
                group: list[_Request] = []
                try:
                    group = self._take()
                    self._cond.release()
                    try:
                        self._run(group)
                    finally:
                        self._cond.acquire()
                finally:
                    for taken in group:  # only if _run itself was interrupted
                        if not taken.done:
                            taken.error = StoreError("the group write was interrupted")
                            taken.done = True
                    self._leading = False
                    self._cond.notify_all()
        if request.error is not None:
            raise _own_copy(request.error)
        if request.result is None:  # pragma: no cover - done always comes with one of the two
            raise StoreError("group write finished without a result")
        return request.result

    def _take(self) -> list[_Request]:
        """The oldest waiting batches, at least one, at most ``max_events`` events in all."""
        taken = 1
        total = len(self._pending[0].events)
        while taken < len(self._pending):
            size = len(self._pending[taken].events)
            if total + size > self._max_events:
                break
            total += size
            taken += 1
        group, self._pending = self._pending[:taken], self._pending[taken:]
        return group

    def _run(self, group: list[_Request]) -> None:
        try:
            results = _one_each(self._write_many([request.events for request in group]), group)
        except BaseException as exc:  # noqa: BLE001 - re-raised in every caller of the group
            for request in group:
                request.error = exc
                request.done = True
            return
        for request, result in zip(group, results, strict=True):
            request.result = result
            request.done = True
        self.groups += 1
        self.batches += len(group)


def _one_each(results: list[WriteResult], group: list[_Request]) -> list[WriteResult]:
    if len(results) != len(group):
        raise StoreError(f"group write returned {len(results)} results for {len(group)} batches")
    return results


def _own_copy(error: BaseException) -> BaseException:
    """The group's error for one caller: every caller of a failed group raises it, so each
    gets its own exception (one object raised in several threads would share a traceback)."""
    if isinstance(error, StoreError):
        copy = StoreError(error.message, source=error.source, remedy=error.remedy)
        copy.__cause__ = error
        return copy
    return error  # not a store failure (a bug): raised as it is
