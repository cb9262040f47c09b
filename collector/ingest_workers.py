"""Ingest worker processes: parse, validate, enrich, encode and match batches on every core.

The pipeline's CPU work per event (I-JSON parse, contract checks, id hash, zone lookup,
Sigma matching, JSON encoding) is pure Python and holds the GIL, so threads do not spread it
over cores. With ``IngestPipeline(workers=N)`` a pool of N forked processes does that work
and hands back, per batch, only what the collector process needs: the encoded events for the
store, the rejections with their dead-letter text, and the rule matches of each event. The
collector process then writes, keeps the alert bookkeeping (one consistent view), and runs
alerts only for events the store saw for the first time, as the in-process path does.

Workers are forked (the compiled rules are closures and cannot be pickled), from the thread
that builds the pipeline, before the server starts its threads. ``close()`` stops them; a
collector killed outright (SIGKILL) cannot, so each worker also exits within a second of
being re-parented.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from agents.errors import InputError, StoreError
from agents.schema import set_path
from collector.store.base import EncodedEvent, encode_event
from collector.validate import Limits, TooLargeError, parse_batch

if TYPE_CHECKING:
    from collector.zones import ZoneMap
    from detections import Match, RuleSet


@dataclass(frozen=True, slots=True)
class Prepared:
    """One batch, validated, enriched, encoded and matched (picklable)."""

    agent_id: str
    agent_name: str
    max_seq: int
    rejected: list[tuple[int, str | None, str, str]]  # (index, event id, reason, raw text)
    events: list[EncodedEvent]
    hits: list[tuple[int, list[Match]]]  # (position in ``events``, matches), in batch order


def enrich_event(
    zones: ZoneMap, event: dict[str, Any], leaves: dict[str, Any] | None, ingested: str
) -> None:
    """Zones and ``event.ingested``, in the event and (when given) in its leaves."""
    zones.enrich(event, leaves)
    if leaves is None:
        set_path(event, "event.ingested", ingested)
    else:
        event["event"]["ingested"] = leaves["event.ingested"] = ingested


def prepare(body: bytes, ingested: str, zones: ZoneMap, rules: RuleSet, limits: Limits) -> Prepared:
    """Everything of one ingest call that needs neither the store nor the alert state."""
    from collector.pipeline import dead_letter_text

    batch = parse_batch(body, limits)
    encoded: list[EncodedEvent] = []
    hits: list[tuple[int, list[Match]]] = []
    all_leaves = batch.leaves
    for position, (_, event) in enumerate(batch.valid):
        leaves = None if all_leaves is None else all_leaves[position]
        enrich_event(zones, event, leaves, ingested)
        encoded.append(encode_event(event, leaves))
        matches = rules.match(event, leaves)
        if matches:
            hits.append((position, matches))
    rejected = [(r.index, r.event_id, r.reason, dead_letter_text(r.raw)) for r in batch.rejected]
    return Prepared(batch.agent_id, batch.agent_name, batch.max_seq, rejected, encoded, hits)


PARENT_CHECK_SECONDS: Final = 1.0

# The worker's copy of the pipeline's configuration (inherited through fork, never pickled).
_STATE: tuple[ZoneMap, RuleSet, Limits] | None = None


def _init_worker(state: tuple[ZoneMap, RuleSet, Limits], parent: int) -> None:
    global _STATE  # noqa: PLW0603 - one configuration per worker process
    _STATE = state
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """A worker outlives a collector killed with SIGKILL (nothing closes the pool): once the
    worker is re-parented, it exits."""
    while True:
        time.sleep(PARENT_CHECK_SECONDS)
        if os.getppid() != parent:
            os._exit(0)


def _prepare_in_worker(body: bytes, ingested: str) -> Prepared | tuple[str, str, str | None]:
    if _STATE is None:  # pragma: no cover - the pool always runs _init_worker first
        raise RuntimeError("ingest worker started without its configuration")
    zones, rules, limits = _STATE
    try:
        return prepare(body, ingested, zones, rules, limits)
    except InputError as exc:  # keyword arguments do not survive pickling: send the parts
        kind = "too_large" if isinstance(exc, TooLargeError) else "input"
        return (kind, exc.message, exc.remedy)


class WorkerError(StoreError):
    """An ingest worker did not answer in time (it died, or the machine is stalled). Nothing
    of the batch was written; like a store failure, the agent is asked to resend (HTTP 503)."""


class IngestWorkers:
    """A pool of forked processes running ``prepare``. A worker that dies breaks the pool: the
    batches it held fail with ``WorkerError`` (the agents resend) and the next call forks a
    fresh pool, so a crash costs a resend, never a hang."""

    def __init__(
        self,
        count: int,
        zones: ZoneMap,
        rules: RuleSet,
        limits: Limits,
        *,
        timeout: float = 120.0,
    ) -> None:
        self.count = count
        self.timeout = timeout
        self._state = (zones, rules, limits)
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(
            self.count,
            mp_context=multiprocessing.get_context("fork"),
            initializer=_init_worker,
            initargs=(self._state, os.getpid()),
        )
        pool.submit(int).result()  # fork every worker now (fork starts them all at once)
        return pool

    def prepare(self, body: bytes, ingested: str) -> Prepared:
        """Run ``prepare`` in a worker; ``InputError``/``TooLargeError`` as in-process."""
        with self._lock:
            pool = self._pool
        try:
            answer: Any = pool.submit(_prepare_in_worker, body, ingested).result(self.timeout)
        except (BrokenProcessPool, TimeoutError) as exc:
            self._restart(pool)
            raise WorkerError(
                f"the ingest worker failed ({type(exc).__name__}); nothing was written",
                remedy="the agent resends; check the collector's memory and CPU",
            ) from exc
        if isinstance(answer, Prepared):
            return answer
        kind, message, remedy = answer
        if kind == "too_large":
            raise TooLargeError(message, remedy=remedy)
        raise InputError(message, remedy=remedy)

    def _restart(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken:  # another thread restarted it already
                return
            self._pool = self._start()
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        with self._lock:
            self._pool.shutdown(wait=True, cancel_futures=True)
