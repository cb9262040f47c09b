"""Embedded default store: one SQLite file in WAL mode.

Events are kept whole as JSON with a few indexed columns for timelines and playbook queries.
The events table is a rowid table (appends at the end) with a unique ``(ts, id)`` index on the
timestamp and deterministic ``event.id``: a write skips events already stored, so a resend is
a no-op (layouts, and why not a plain id index: ``collector.store.sqlite_events``). Concurrent
writes share transactions (``collector.store.group_commit``). Triage records
form a hash chain (each record's hash covers the previous hash), so editing or deleting one
is detectable by ``verify_triage_chain``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from agents.errors import NotFoundError, StoreError
from agents.schema import canonical_json
from collector.ledger import GENESIS_HASH, triage_hash
from collector.models import (
    MAX_ALERT_EVENT_IDS,
    Alert,
    AlertStatus,
    DeadLetter,
    EventQuery,
    Resolution,
    TriageRecord,
    WriteResult,
)
from collector.store import sqlite_query
from collector.store.base import EncodedEvent, HuntDialect, encode_event
from collector.store.group_commit import GroupCommit
from collector.store.sqlite_events import ensure_events_table, write_groups

_SCHEMA = """
CREATE TABLE IF NOT EXISTS dead_letters (
    n INTEGER PRIMARY KEY AUTOINCREMENT,
    agent_id TEXT NOT NULL,
    event_id TEXT,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    rule_id TEXT NOT NULL,
    title TEXT NOT NULL,
    level TEXT NOT NULL,
    tags TEXT NOT NULL,
    host TEXT NOT NULL,
    zone TEXT,
    entity TEXT NOT NULL,
    count INTEGER NOT NULL,
    first_seen REAL NOT NULL,
    last_seen REAL NOT NULL,
    event_ids TEXT NOT NULL,
    status TEXT NOT NULL,
    resolution TEXT,
    description TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_rule_entity ON alerts(rule_id, entity, last_seen);
CREATE INDEX IF NOT EXISTS alerts_last_seen ON alerts(last_seen);
CREATE TABLE IF NOT EXISTS triage (
    seq INTEGER PRIMARY KEY,
    alert_id TEXT NOT NULL,
    playbook_id TEXT NOT NULL,
    step_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    actor TEXT NOT NULL,
    at REAL NOT NULL,
    detail TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS triage_alert ON triage(alert_id);
CREATE INDEX IF NOT EXISTS triage_at ON triage(at);
"""


# Ingest speed (bench/store_ingest.py): a 64 MiB page cache keeps the recent end of the
# indices hot, and a checkpoint every ~40 MiB of WAL (instead of SQLite's 1,000 pages) cuts
# the fsyncs; the page count depends on the file's page size (16 KiB new, 4 KiB older files).
_WRITE_PRAGMAS = ("PRAGMA cache_size=-65536",)
_CHECKPOINT_BYTES = 40 * 1024 * 1024


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _opt_ts(moment: datetime | None) -> float | None:
    return None if moment is None else _ts(moment)


def _dt(value: float) -> datetime:
    return datetime.fromtimestamp(value, UTC)


class SqliteStore:
    """The ``Store`` contract on one SQLite file (thread-safe: one connection, one lock)."""

    hunt_dialect: HuntDialect = "sqlite"

    def __init__(self, path: Path | str) -> None:
        self.path = str(path)
        try:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            # 16 KiB pages (new files only; before WAL, which fixes the size): event
            # documents are ~0.5-1 KiB, and bigger pages cut the B-tree work of a batch insert
            # by ~15 % here (bench/RESULTS.md)
            self._conn.execute("PRAGMA page_size=16384")
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            for pragma in _WRITE_PRAGMAS:
                self._conn.execute(pragma)
            (page,) = self._conn.execute("PRAGMA page_size").fetchone()
            self._conn.execute(f"PRAGMA wal_autocheckpoint={_CHECKPOINT_BYTES // int(page)}")
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._rowid = ensure_events_table(self._conn)
            self._conn.executescript(_SCHEMA)
            sqlite_query.prepare(self._conn)
        except sqlite3.Error as exc:
            raise StoreError(
                f"cannot open SQLite store: {exc}",
                source=self.path,
                remedy="check the data directory exists, is writable and the disk is not full",
            ) from exc
        self._lock = threading.Lock()
        self._group = GroupCommit(self._write_groups)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self._conn
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite write failed: {exc}", source=self.path) from exc

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite read failed: {exc}", source=self.path) from exc

    # -- events ---------------------------------------------------------------------------
    def write_events(self, events: Sequence[dict[str, Any]]) -> WriteResult:
        return self.write_encoded_events([encode_event(ev) for ev in events])

    def write_encoded_events(self, events: Sequence[EncodedEvent]) -> WriteResult:
        """``write_events`` for events encoded already. Concurrent calls share transactions
        (``collector.store.group_commit``); each gets the result of its own batch."""
        return self._group.write(events)

    @property
    def group_commits(self) -> tuple[int, int]:
        """(transactions, batches written in them) since this store was opened."""
        return self._group.groups, self._group.batches

    def _write_groups(self, batches: list[Sequence[EncodedEvent]]) -> list[WriteResult]:
        """One transaction for a group of batches (``sqlite_events.write_groups``)."""
        with self._tx() as conn:
            return write_groups(conn, batches, self._rowid)

    def query_events(self, query: EventQuery) -> list[dict[str, Any]]:
        where, params = sqlite_query.conditions(
            (
                ("host = ?", query.host),
                ("ts >= ?", _opt_ts(query.since)),
                ("ts <= ?", _opt_ts(query.until)),
            ),
            {"kind": query.kinds, "pid": query.pids, "id": query.ids},
        )
        sql = "SELECT doc FROM events" + sqlite_query.where_sql(where)
        sql += " ORDER BY ts, agent_id, seq LIMIT ?"
        params.append(query.limit)
        return [orjson.loads(row[0]) for row in self._read(sql, params)]

    def _scan_filters(self, query: EventQuery) -> tuple[list[str], list[Any]]:
        return sqlite_query.where_clause(
            query.host,
            _opt_ts(query.since),
            _opt_ts(query.until),
            {"_kind": query.kinds, "_pid": query.pids, "_id": query.ids},
        )

    def iter_events(self, query: EventQuery) -> Iterator[dict[str, Any]]:
        where, params = self._scan_filters(query)
        return sqlite_query.scan(self._read, where, params)

    def search_native(self, condition: str, query: EventQuery) -> Iterator[dict[str, Any]]:
        where, params = self._scan_filters(query)
        return sqlite_query.scan(self._read, where, params, condition)

    def count_events(self) -> int:
        return int(self._read("SELECT count(*) FROM events")[0][0])

    def max_seq(self, agent_id: str) -> int:
        """Highest stored sequence number for an agent (0 if none)."""
        row = self._read("SELECT max(seq) FROM events WHERE agent_id = ?", (agent_id,))[0]
        return int(row[0] or 0)

    # -- dead letters ---------------------------------------------------------------------
    def write_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        rows = [(d.agent_id, d.event_id, d.reason, d.raw, _ts(d.received_at)) for d in letters]
        with self._tx() as conn:
            conn.executemany(
                "INSERT INTO dead_letters(agent_id, event_id, reason, raw, received_at)"
                " VALUES (?,?,?,?,?)",
                rows,
            )

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        rows = self._read(
            "SELECT agent_id, event_id, reason, raw, received_at FROM dead_letters"
            " ORDER BY n DESC LIMIT ?",
            (limit,),
        )
        return [
            DeadLetter(agent_id=a, event_id=e, reason=r, raw=raw, received_at=_dt(t))
            for a, e, r, raw, t in rows
        ]

    # -- alerts ---------------------------------------------------------------------------
    def upsert_alert(self, alert: Alert) -> None:
        row = (
            alert.id,
            alert.rule_id,
            alert.title,
            alert.level,
            orjson.dumps(list(alert.tags)).decode(),
            alert.host,
            alert.zone,
            alert.entity,
            alert.count,
            _ts(alert.first_seen),
            _ts(alert.last_seen),
            orjson.dumps(list(alert.event_ids[:MAX_ALERT_EVENT_IDS])).decode(),
            alert.status,
            alert.resolution,
            alert.description,
        )
        with self._tx() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO alerts VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row
            )

    _ALERT_COLUMNS = (
        "id, rule_id, title, level, tags, host, zone, entity, count, first_seen, last_seen,"
        " event_ids, status, resolution, description"
    )

    @staticmethod
    def _alert(row: tuple[Any, ...]) -> Alert:
        (
            aid,
            rule_id,
            title,
            level,
            tags,
            host,
            zone,
            entity,
            count,
            first,
            last,
            ids,
            status,
            resolution,
            description,
        ) = row
        return Alert(
            id=aid,
            rule_id=rule_id,
            title=title,
            level=level,
            tags=tuple(orjson.loads(tags)),
            host=host,
            zone=zone,
            entity=entity,
            count=count,
            first_seen=_dt(first),
            last_seen=_dt(last),
            event_ids=tuple(orjson.loads(ids)),
            status=status,
            resolution=resolution,
            description=description,
        )

    def get_alert(self, alert_id: str) -> Alert | None:
        rows = self._read(f"SELECT {self._ALERT_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))
        return self._alert(rows[0]) if rows else None

    def find_open_alert(self, rule_id: str, entity: str, not_before: datetime) -> Alert | None:
        rows = self._read(
            f"SELECT {self._ALERT_COLUMNS} FROM alerts WHERE rule_id = ? AND entity = ?"
            " AND status != 'closed' AND last_seen >= ? ORDER BY last_seen DESC LIMIT 1",
            (rule_id, entity, _ts(not_before)),
        )
        return self._alert(rows[0]) if rows else None

    def list_alerts(
        self,
        *,
        status: AlertStatus | None = None,
        host: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        where, params = sqlite_query.conditions(
            (
                ("status = ?", status),
                ("host = ?", host),
                ("last_seen >= ?", _opt_ts(since)),
                ("first_seen <= ?", _opt_ts(until)),
            )
        )
        sql = f"SELECT {self._ALERT_COLUMNS} FROM alerts" + sqlite_query.where_sql(where)
        sql += " ORDER BY last_seen DESC LIMIT ?"
        params.append(limit)
        return [self._alert(row) for row in self._read(sql, params)]

    def set_alert_status(
        self, alert_id: str, status: AlertStatus, resolution: Resolution | None
    ) -> Alert:
        with self._tx() as conn:
            cursor = conn.execute(
                "UPDATE alerts SET status = ?, resolution = ? WHERE id = ?",
                (status, resolution, alert_id),
            )
            if cursor.rowcount == 0:
                raise NotFoundError(
                    f"no alert with id {alert_id!r}", remedy="list alerts: sekimori alerts list"
                )
        alert = self.get_alert(alert_id)
        if alert is None:  # deleted between the update and the read
            raise NotFoundError(f"alert {alert_id!r} vanished during the update")
        return alert

    # -- triage ledger --------------------------------------------------------------------
    def append_triage(self, record: TriageRecord) -> TriageRecord:
        from dataclasses import replace

        with self._tx() as conn:
            last = conn.execute("SELECT seq, hash FROM triage ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            stamped = replace(record, seq=seq, prev_hash=prev)
            stamped = replace(stamped, hash=triage_hash(prev, stamped))
            conn.execute(
                "INSERT INTO triage VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    stamped.seq,
                    stamped.alert_id,
                    stamped.playbook_id,
                    stamped.step_id,
                    stamped.kind,
                    stamped.actor,
                    _ts(stamped.at),
                    canonical_json(stamped.detail),
                    stamped.prev_hash,
                    stamped.hash,
                ),
            )
        return stamped

    def triage_records(
        self,
        *,
        alert_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[TriageRecord]:
        where, params = sqlite_query.conditions(
            (("alert_id = ?", alert_id), ("at >= ?", _opt_ts(since)), ("at <= ?", _opt_ts(until)))
        )
        sql = "SELECT seq, alert_id, playbook_id, step_id, kind, actor, at, detail, prev_hash, hash"
        sql += " FROM triage" + sqlite_query.where_sql(where) + " ORDER BY seq"
        return [
            TriageRecord(
                seq=seq,
                alert_id=alert,
                playbook_id=pb,
                step_id=step,
                kind=kind,
                actor=actor,
                at=_dt(at),
                detail=orjson.loads(detail),
                prev_hash=prev,
                hash=digest,
            )
            for seq, alert, pb, step, kind, actor, at, detail, prev, digest in self._read(
                sql, params
            )
        ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
