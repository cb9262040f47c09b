"""SQLite insert cost per event as the file grows: the old events layout against the current.

    .venv/bin/python bench/sqlite_layout.py --events 1000000

Writes the same encoded events (``bench/store_events.py``, batches of 500, 4 batches per
transaction as group commit makes them under concurrent agents) into two fresh files with the
store's pragmas, and prints the cost per event for each quarter of the load:

- old: unique index on the random ``event.id`` plus ``ts``, ``(host, ts)``, ``(agent_id, seq)``
  indices; existing ids looked up before the insert (the code before the ``(ts, id)`` layout);
- current: ``collector.store.sqlite_events.CURRENT_LAYOUT`` and ``write_groups``, the
  store's own code.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.store_ingest import bodies
from collector.store.base import EncodedEvent, encode_event
from collector.store.sqlite_events import CURRENT_LAYOUT, write_groups
from collector.validate import Limits, parse_batch

PRAGMAS = (
    "PRAGMA page_size=16384",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA cache_size=-65536",
    "PRAGMA wal_autocheckpoint=2500",
)
OLD_LAYOUT = """
CREATE TABLE events (n INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, ts REAL NOT NULL,
    host TEXT NOT NULL, kind TEXT NOT NULL, pid INTEGER, agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL, doc BLOB NOT NULL);
CREATE INDEX events_host_ts ON events(host, ts);
CREATE INDEX events_ts ON events(ts);
CREATE INDEX events_agent_seq ON events(agent_id, seq);
"""
GROUP = 4
Writer = Callable[[sqlite3.Connection, list[Sequence[EncodedEvent]]], None]


def _old_write(conn: sqlite3.Connection, batches: list[Sequence[EncodedEvent]]) -> None:
    events = [ev for batch in batches for ev in batch]
    existing: set[str] = set()
    for start in range(0, len(events), 500):
        chunk = [ev.id for ev in events[start : start + 500]]
        marks = ",".join("?" * len(chunk))
        sql = f"SELECT id FROM events WHERE id IN ({marks})"  # noqa: S608 - placeholders only
        existing.update(row[0] for row in conn.execute(sql, chunk))
    conn.executemany(
        "INSERT INTO events(id, ts, host, kind, pid, agent_id, seq, doc) VALUES (?,?,?,?,?,?,?,?)",
        [
            (e.id, e.ts, e.host, e.kind, e.pid, e.agent_id, e.seq, e.doc)
            for e in events
            if e.id not in existing
        ],
    )


def _new_write(conn: sqlite3.Connection, batches: list[Sequence[EncodedEvent]]) -> None:
    write_groups(conn, batches, rowid=True)


def run(label: str, layout: str, write: Writer, batches: list[list[EncodedEvent]]) -> None:
    total = sum(len(b) for b in batches)
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/bench.db", isolation_level=None)
        for pragma in PRAGMAS:
            conn.execute(pragma)
        conn.executescript(layout)
        quarters: list[str] = []
        mark_cpu, mark_wall, done = time.process_time(), time.perf_counter(), 0
        cpu0, wall0 = mark_cpu, mark_wall
        for start in range(0, len(batches), GROUP):
            group = batches[start : start + GROUP]
            conn.execute("BEGIN IMMEDIATE")
            write(conn, list(group))
            conn.execute("COMMIT")
            done += sum(len(b) for b in group)
            if done >= (len(quarters) + 1) * total / 4:
                cpu, wall = time.process_time(), time.perf_counter()
                share = total / 4
                quarters.append(
                    f"{(cpu - mark_cpu) / share * 1e6:.1f}/{(wall - mark_wall) / share * 1e6:.1f}"
                )
                mark_cpu, mark_wall = cpu, wall
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        conn.close()
    print(
        f"{label:8s} {total:,} events: {cpu / total * 1e6:.1f} us CPU, {wall / total * 1e6:.1f}"
        f" us wall per event; per quarter (CPU/wall us): {', '.join(quarters)}"
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1_000_000)
    args = parser.parse_args()
    limits = Limits()
    batches = [
        [encode_event(event) for _, event in parse_batch(body, limits).valid]
        for body in bodies(args.events)
    ]
    run("old", OLD_LAYOUT, _old_write, batches)
    run("current", CURRENT_LAYOUT, _new_write, batches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
