"""Durable, byte-bounded spool between the sources and the shipper.

Layout: ``<dir>/<first_seq:020d>.seg`` segment files (format in :mod:`agents.spool_format`) and
``<dir>/state.json`` (``acked_seq``, ``floor_seq``, ``next_seq``, written atomically).

- Sequence numbers are assigned on :meth:`Spool.append`, contiguous per agent, and continue
  across restarts (recovered from the newest record and ``state.json``).
- fsync policy: ``fsync_interval=0`` (default) fsyncs once per :meth:`append` call, i.e. per
  batch of events; ``fsync_interval>0`` fsyncs at most that often. Either way
  :meth:`read_batch` syncs first, so nothing is shipped that is not on disk.
- Bound: when the segments would exceed ``max_bytes`` the oldest segment is deleted and a
  ``telemetry_gap`` event (``spool_full``) names the exact seq range and count of the unacked
  events it held. Gap events themselves never evict, so the bound can be exceeded by the gap
  records (a few hundred bytes each, one per disjoint dropped range) until the next append.
  A gap event evicted in turn (the collector stayed away) is announced again, joined with
  adjacent dropped ranges, so the gap events that reach the collector announce every dropped
  seq exactly once, in disjoint ranges whose count equals their length. Unacked gap
  announcements are kept in ``state.json`` too: a gap record lost to corruption is
  re-announced on recovery.
  Otherwise records leave the spool only through :meth:`ack`.
- Recovery: corrupt or torn records are skipped (counted, logged); holes they leave in the
  unacked seq range become ``telemetry_gap`` events (``spool_corrupt``) with exact counts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agents.errors import ConfigError
from agents.schema import canonical_json, seal
from agents.spool_format import HEADER, RecordPos, encode_record, scan

log = logging.getLogger(__name__)

GapMaker = Callable[..., dict[str, Any]]  # (first_seq=, last_seq=, count=, reason=) -> event


@dataclass
class _Segment:
    path: Path
    records: list[RecordPos] = field(default_factory=list)
    size: int = 0

    @property
    def last_seq(self) -> int:
        return self.records[-1].seq if self.records else 0


@dataclass(frozen=True)
class Batch:
    first_seq: int
    last_seq: int
    payloads: list[bytes]


@dataclass
class SpoolStats:
    appended: int = 0
    dropped: int = 0  # unacked events deleted at the bound
    corrupt_regions: int = 0
    corrupt_bytes: int = 0
    gap_events: int = 0


class Spool:
    def __init__(
        self,
        directory: Path,
        *,
        make_gap: GapMaker,
        max_bytes: int = 64 * 1024 * 1024,
        segment_bytes: int = 4 * 1024 * 1024,
        fsync_interval: float = 0.0,
    ) -> None:
        if segment_bytes * 2 > max_bytes:
            raise ConfigError(
                f"spool bound {max_bytes} B must be at least twice the segment size "
                f"{segment_bytes} B",
                remedy="raise --spool-max-bytes",
            )
        self.directory = directory
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.fsync_interval = fsync_interval
        self.stats = SpoolStats()
        self._make_gap = make_gap
        self._lock = threading.RLock()
        self._segments: list[_Segment] = []
        self._handle: Any = None  # unbuffered append handle of the newest segment
        self._dirty = False
        self._last_sync = 0.0
        self._pending_gaps: list[tuple[int, int, int]] = []  # disjoint (first, last, count)
        self._gaps: dict[int, tuple[int, int, int]] = {}  # seq of a spool gap -> its range
        directory.mkdir(parents=True, exist_ok=True)
        self.acked_seq, self.floor_seq, self.next_seq = self._load_state()
        self._recover()

    # -- state ---------------------------------------------------------------------------------
    def _load_state(self) -> tuple[int, int, int]:
        try:
            state = json.loads((self.directory / "state.json").read_text())
            for seq, first, last, count in state.get("gaps", []):
                self._gaps[int(seq)] = (int(first), int(last), int(count))
            self._pending_gaps = [(int(a), int(b), int(c)) for a, b, c in state.get("pending", [])]
            return int(state["acked_seq"]), int(state["floor_seq"]), int(state["next_seq"])
        except FileNotFoundError:
            return 0, 0, 1
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("spool state.json unreadable (%s); recovering from segments", exc)
            return 0, 0, 1

    def _save_state(self) -> None:
        state = {
            "acked_seq": self.acked_seq,
            "floor_seq": self.floor_seq,
            "next_seq": self.next_seq,
            # unacked gap announcements, kept until acked so a corrupt gap record is re-announced
            "gaps": [[seq, *info] for seq, info in sorted(self._gaps.items())],
            "pending": [list(r) for r in self._pending_gaps],
        }
        tmp = self.directory / "state.json.tmp"
        with open(tmp, "w") as handle:
            handle.write(json.dumps(state))
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.directory / "state.json")
        self._sync_dir()

    def _sync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _recover(self) -> None:
        present: list[int] = []
        for path in sorted(self.directory.glob("*.seg")):
            data = path.read_bytes()
            result = scan(data)
            if result.corrupt_regions:
                self.stats.corrupt_regions += result.corrupt_regions
                self.stats.corrupt_bytes += result.skipped_bytes
                log.warning(
                    "spool %s: skipped %d corrupt region(s), %d byte(s)",
                    path.name,
                    result.corrupt_regions,
                    result.skipped_bytes,
                )
            if result.good_end < len(data):  # torn tail: cut it so appends stay readable
                with open(path, "r+b") as handle:
                    handle.truncate(result.good_end)
            for record in result.records:  # remember our own gap events (see _make_room)
                payload = data[record.payload_offset : record.offset + record.size]
                if b'"spool_' in payload and b'"telemetry_gap"' in payload:
                    self._remember_gap(record.seq, payload)
            segment = _Segment(path, result.records, result.good_end)
            if not segment.records:
                path.unlink()
                continue
            self._segments.append(segment)
            present.extend(r.seq for r in segment.records)
        self.floor_seq = max(self.floor_seq, self.acked_seq)
        if present:
            self.next_seq = max(self.next_seq, max(present) + 1)
        have = {seq for seq in present if seq > self.floor_seq}
        for seq in sorted(self._gaps):  # a gap record lost to corruption: announce its range again
            if seq <= self.floor_seq or seq not in have:
                info = self._gaps.pop(seq)
                if seq > self.floor_seq:
                    self._pending_gaps = _merge([*self._pending_gaps, info])
        holes = [s for s in range(self.floor_seq + 1, self.next_seq) if s not in have]
        for first, last in _ranges(holes):
            self._emit_gap(first, last, last - first + 1, "spool_corrupt")
        self._flush_gaps()
        self._save_state()

    # -- writing -------------------------------------------------------------------------------
    def append(self, events: list[dict[str, Any]]) -> list[int]:
        """Assign seqs, seal and write ``events``; fsync per the policy. Returns the seqs.

        On OSError (disk full) the events before the failing one are written: exactly
        ``next_seq - <next_seq before the call>`` of them; the caller retries the rest."""
        with self._lock:
            seqs = [self._write_event(event) for event in events]
            self._flush_gaps()
            self.stats.appended += len(seqs)
            self._maybe_sync()
            return seqs

    def _flush_gaps(self) -> None:
        while self._pending_gaps:  # a gap event may itself push out another segment
            first, last, count = self._pending_gaps.pop(0)
            try:
                self._emit_gap(first, last, count, "spool_full")
            except OSError:
                self._pending_gaps.insert(0, (first, last, count))  # emitted by the next append
                raise

    def _remember_gap(self, seq: int, payload: bytes) -> None:
        try:
            gap = json.loads(payload)["sekimori"]["gap"]
            if str(gap.get("reason", "")).startswith("spool_"):
                self._gaps[seq] = (int(gap["first_seq"]), int(gap["last_seq"]), int(gap["count"]))
        except (ValueError, KeyError, TypeError):
            return

    def _emit_gap(self, first: int, last: int, count: int, reason: str) -> None:
        log.warning("spool gap: %d event(s) lost, seq %d..%d (%s)", count, first, last, reason)
        self.stats.gap_events += 1
        gap = self._make_gap(first_seq=first, last_seq=last, count=count, reason=reason)
        seq = self._write_event(gap, may_drop=False)
        self._gaps[seq] = (first, last, count)
        self._save_state()
        self._maybe_sync()

    def _write_event(self, event: dict[str, Any], *, may_drop: bool = True) -> int:
        seq = self.next_seq
        marker = event.setdefault("sekimori", {})
        marker["seq"] = seq
        gap = marker.get("gap")
        if isinstance(gap, dict) and "first_seq" not in gap:  # a source gap: "just before me"
            gap["first_seq"] = gap["last_seq"] = seq
        seal(event)
        record = encode_record(seq, canonical_json(event).encode("utf-8"))
        active = self._segments[-1] if self._segments else None
        if (
            active is None
            or self._handle is None
            or (active.records and active.size + len(record) > self.segment_bytes)
        ):
            active = self._rotate(seq)
        if may_drop:  # a gap event never evicts: at most one gap record over the bound
            self._make_room(len(record))
        offset = active.size
        try:
            written = self._handle.write(record)
        except OSError:
            self._handle.truncate(offset)  # no torn record in the middle of a segment
            raise
        if written != len(record):
            self._handle.truncate(offset)
            raise OSError(f"short write to {active.path} ({written} of {len(record)} B)")
        active.records.append(RecordPos(seq=seq, offset=offset, size=len(record)))
        active.size += len(record)
        self.next_seq = seq + 1
        self._dirty = True
        return seq

    def _rotate(self, first_seq: int) -> _Segment:
        if self._handle is not None:
            if self._segments and not self._segments[-1].records:
                return self._segments[-1]
            self._fsync()
            self._handle.close()
        elif self._segments and self._segments[-1].size < self.segment_bytes:
            segment = self._segments[-1]  # reopen the newest segment after a restart
            self._handle = open(segment.path, "ab", buffering=0)  # noqa: SIM115 - long-lived
            return segment
        segment = _Segment(self.directory / f"{first_seq:020d}.seg")
        self._handle = open(segment.path, "ab", buffering=0)  # noqa: SIM115 - long-lived
        self._segments.append(segment)
        self._sync_dir()
        return segment

    def _make_room(self, incoming: int) -> None:
        while len(self._segments) > 1 and self.total_bytes + incoming > self.max_bytes:
            oldest = self._segments.pop(0)
            lost = [r.seq for r in oldest.records if r.seq > self.floor_seq]
            self.floor_seq = max(self.floor_seq, oldest.last_seq)
            carried = [self._gaps.pop(seq) for seq in lost if seq in self._gaps]
            for record in oldest.records:
                self._gaps.pop(record.seq, None)
            if lost:
                self.stats.dropped += len(lost)
                self._pending_gaps = _merge(
                    [*self._pending_gaps, (lost[0], lost[-1], len(lost)), *carried]
                )
            self._save_state()  # before the unlink, as in ack()
            oldest.path.unlink(missing_ok=True)

    def _maybe_sync(self) -> None:
        if self.fsync_interval <= 0 or time.monotonic() - self._last_sync >= self.fsync_interval:
            self._fsync()

    def _fsync(self) -> None:
        if self._dirty and self._handle is not None:
            os.fsync(self._handle.fileno())
            self._dirty = False
            self._last_sync = time.monotonic()

    def sync(self) -> None:
        with self._lock:
            self._fsync()

    # -- reading and acking --------------------------------------------------------------------
    @property
    def total_bytes(self) -> int:
        return sum(segment.size for segment in self._segments)

    @property
    def pending(self) -> int:
        with self._lock:
            return sum(1 for s in self._segments for r in s.records if r.seq > self.floor_seq)

    def read_batch(self, max_events: int, max_bytes: int) -> Batch | None:
        """The oldest unacked events (at least one, even if larger than ``max_bytes``)."""
        with self._lock:
            self._fsync()
            payloads: list[bytes] = []
            seqs: list[int] = []
            size = 0
            for segment in self._segments:
                wanted = [r for r in segment.records if r.seq > self.floor_seq]
                if not wanted:
                    continue
                with open(segment.path, "rb") as handle:
                    for record in wanted:
                        if len(payloads) >= max_events or (
                            payloads and size + record.size > max_bytes
                        ):
                            break
                        handle.seek(record.payload_offset)
                        payloads.append(handle.read(record.size - HEADER.size))
                        seqs.append(record.seq)
                        size += record.size
                if len(payloads) >= max_events or size >= max_bytes:
                    break
            if not payloads:
                return None
            return Batch(first_seq=seqs[0], last_seq=seqs[-1], payloads=payloads)

    def ack(self, seq: int) -> None:
        """The collector stored everything up to ``seq``: forget it."""
        with self._lock:
            seq = min(seq, self.next_seq - 1)
            if seq <= self.acked_seq:
                return
            self.acked_seq = seq
            self.floor_seq = max(self.floor_seq, seq)
            done: list[_Segment] = []
            while self._segments and self._segments[0].last_seq <= self.floor_seq:
                done.append(self._segments.pop(0))
                for record in done[-1].records:
                    self._gaps.pop(record.seq, None)
            if done and not self._segments and self._handle is not None:
                self._handle.close()
                self._handle = None
            # State first, files second: a crash in between leaves only acked files (skipped
            # on read, removed by the next ack). The other order could lose next_seq with the
            # newest segment, and a restarted agent would reuse sequence numbers.
            self._save_state()
            for segment in done:
                segment.path.unlink(missing_ok=True)

    def close(self) -> None:
        with self._lock:
            self._fsync()
            if self._handle is not None:
                self._handle.close()
                self._handle = None
            self._save_state()


def _merge(ranges: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Sort (first, last, count) ranges and join the adjacent ones; disjoint ones stay apart
    so every announced range is exact (its count equals its length)."""
    out: list[tuple[int, int, int]] = []
    for first, last, count in sorted(ranges):
        if out and first == out[-1][1] + 1:
            out[-1] = (out[-1][0], last, out[-1][2] + count)
        else:
            out.append((first, last, count))
    return out


def _ranges(values: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for value in values:
        if out and out[-1][1] == value - 1:
            out[-1] = (out[-1][0], value)
        else:
            out.append((value, value))
    return out
