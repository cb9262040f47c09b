"""The agent registry: enrollment tokens, enrolled agents, issued certificates, revocations,
last seen, spool backlog, sequence state and transport anomalies.

It is its own SQLite file (``<data_dir>/registry.db``, WAL), separate from the event store, so
any store backend can sit behind the collector and the CLI can create tokens or revoke agents
while the collector runs. Tokens are kept only as SHA-256 hashes. Revocation is read by the
collector through a cache refreshed every ``refresh_interval`` seconds (default 1 s): a
``sekimori agent revoke`` from another process takes effect within that time.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.errors import AuthError, ConfigError, NotFoundError, StoreError

TOKEN_PREFIX = "skt_"  # noqa: S105 - a prefix, not a secret
AGENT_ID = re.compile(r"^[0-9a-f]{32}$")
SKEW_THRESHOLD = 30.0  # seconds of clock difference worth recording

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
  hash TEXT PRIMARY KEY, created REAL NOT NULL, expires REAL NOT NULL,
  uses_left INTEGER NOT NULL, zone TEXT, label TEXT);
CREATE TABLE IF NOT EXISTS agents (
  id TEXT PRIMARY KEY, name TEXT NOT NULL, zone TEXT, enrolled REAL NOT NULL,
  serial TEXT, not_after REAL, last_seen REAL, max_seq INTEGER NOT NULL DEFAULT 0,
  backlog INTEGER, skew REAL, revoked REAL, revoke_reason TEXT);
CREATE TABLE IF NOT EXISTS certs (
  serial TEXT PRIMARY KEY, agent_id TEXT NOT NULL, issued REAL NOT NULL, not_after REAL NOT NULL);
CREATE TABLE IF NOT EXISTS anomalies (
  id INTEGER PRIMARY KEY, agent_id TEXT NOT NULL, at REAL NOT NULL, kind TEXT NOT NULL,
  detail TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
  id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, action TEXT NOT NULL, args TEXT NOT NULL,
  state TEXT NOT NULL, created REAL NOT NULL, updated REAL NOT NULL, actor TEXT NOT NULL,
  alert_id TEXT NOT NULL, result TEXT);
"""

_AGENT_COLUMNS = (
    "id, name, zone, enrolled, serial, not_after, last_seen, max_seq, backlog, skew, revoked"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentRecord:
    id: str
    name: str
    zone: str | None
    enrolled: float
    serial: str | None
    not_after: float | None
    last_seen: float | None
    max_seq: int
    backlog: int | None
    skew: float | None
    revoked: float | None

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class Anomaly:
    agent_id: str
    at: float
    kind: str  # "seq_regression" | "clock_skew"
    detail: str


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Registry:
    """Thread-safe (one connection, one lock); several processes may open the same file."""

    def __init__(self, path: Path, *, refresh_interval: float = 1.0) -> None:
        self.path = path
        self.refresh_interval = refresh_interval
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA busy_timeout=10000")
            self.conn.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the agent registry: {exc}", source=str(path)) from exc
        path.chmod(0o600)
        self.lock = threading.RLock()
        self._revoked: set[str] = set()
        self._known: set[str] = set()
        self._refreshed = 0.0

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute("ROLLBACK")
                    raise
                self.conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StoreError(
                    f"agent registry write failed: {exc}", source=str(self.path)
                ) from exc

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self.lock:
            try:
                return self.conn.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise StoreError(
                    f"agent registry read failed: {exc}", source=str(self.path)
                ) from exc

    # -- tokens ---------------------------------------------------------------------------------
    def create_token(
        self, *, ttl: float, uses: int = 1, zone: str | None = None, label: str = ""
    ) -> str:
        """A new enrollment token (shown once; only its hash is stored)."""
        if ttl <= 0 or uses < 1:
            raise ConfigError("a token needs a positive --ttl and --uses >= 1")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        now = time.time()
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO tokens VALUES (?,?,?,?,?,?)",
                (hash_token(token), now, now + ttl, uses, zone, label),
            )
        return token

    def redeem_token(self, token: str, agent_id: str, name: str) -> str | None:
        """Spend one use of ``token`` and reserve ``agent_id``; returns the token's zone.

        Raises AuthError (unknown, expired or used-up token) or ConfigError (bad or taken id)."""
        if not AGENT_ID.match(agent_id):
            raise ConfigError(f"agent id must be 32 lowercase hex characters, got {agent_id!r}")
        now = time.time()
        with self.tx() as conn:
            row = conn.execute(
                "SELECT expires, uses_left, zone FROM tokens WHERE hash=?", (hash_token(token),)
            ).fetchone()
            if row is None:
                raise AuthError("unknown enrollment token")
            expires, uses_left, zone = row
            if expires < now:
                raise AuthError("enrollment token expired", remedy="create a new one")
            if uses_left < 1:
                raise AuthError("enrollment token already used", remedy="create a new one")
            if conn.execute("SELECT 1 FROM agents WHERE id=?", (agent_id,)).fetchone():
                raise ConfigError(
                    f"agent id {agent_id} is already enrolled",
                    remedy="enroll from a fresh --state-dir (a new identity)",
                )
            conn.execute(
                "UPDATE tokens SET uses_left=uses_left-1 WHERE hash=?", (hash_token(token),)
            )
            conn.execute(
                "INSERT INTO agents (id, name, zone, enrolled) VALUES (?,?,?,?)",
                (agent_id, name, zone, now),
            )
        return str(zone) if zone is not None else None

    # -- agents and certificates -----------------------------------------------------------------
    def record_cert(self, agent_id: str, serial: str, not_after: float) -> None:
        with self.tx() as conn:
            conn.execute(
                "INSERT INTO certs VALUES (?,?,?,?)", (serial, agent_id, time.time(), not_after)
            )
            conn.execute(
                "UPDATE agents SET serial=?, not_after=? WHERE id=?", (serial, not_after, agent_id)
            )

    def get(self, agent_id: str) -> AgentRecord | None:
        rows = self.read(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id=?", (agent_id,))  # noqa: S608
        return _record(rows[0]) if rows else None

    def agents(self) -> list[AgentRecord]:
        return [
            _record(r)
            for r in self.read(f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY name, id")  # noqa: S608
        ]

    def revoke(self, agent_id: str, reason: str = "") -> AgentRecord:
        with self.tx() as conn:
            changed = conn.execute(
                "UPDATE agents SET revoked=COALESCE(revoked, ?), revoke_reason=? WHERE id=?",
                (time.time(), reason, agent_id),
            ).rowcount
        if not changed:
            raise NotFoundError(
                f"no enrolled agent {agent_id!r}", remedy="see sekimori agents list"
            )
        self._revoked.add(agent_id)
        record = self.get(agent_id)
        assert record is not None  # noqa: S101 - just updated
        return record

    def status(self, agent_id: str) -> str:
        """``active``, ``revoked`` or ``unknown``. Cached; re-read from disk at most every
        ``refresh_interval`` seconds (and on a cache miss), so a revocation made by another
        process is seen within that time."""
        now = time.monotonic()
        if now - self._refreshed >= self.refresh_interval or agent_id not in self._known:
            rows = self.read("SELECT id, revoked FROM agents")
            self._known = {r[0] for r in rows}
            self._revoked = {r[0] for r in rows if r[1] is not None}
            self._refreshed = now
        if agent_id in self._revoked:
            return "revoked"
        return "active" if agent_id in self._known else "unknown"

    # -- what each batch tells us ----------------------------------------------------------------
    def observe(
        self,
        agent_id: str,
        *,
        max_seq: int,
        accepted: int,
        backlog: int | None = None,
        skew: float | None = None,
    ) -> list[Anomaly]:
        """Record last seen / backlog / sequence state; return anomalies found (also stored)."""
        now = time.time()
        found: list[Anomaly] = []
        with self.tx() as conn:
            row = conn.execute(
                "SELECT max_seq, skew FROM agents WHERE id=?", (agent_id,)
            ).fetchone()
            if row is None:
                return []
            known_max, old_skew = row
            if accepted > 0 and 0 < max_seq < known_max:
                found.append(
                    Anomaly(
                        agent_id,
                        now,
                        "seq_regression",
                        f"new events up to seq {max_seq} "
                        f"after seq {known_max} was stored (agent spool reset?)",
                    )
                )
            if (
                skew is not None
                and abs(skew) > SKEW_THRESHOLD
                and (old_skew is None or abs(old_skew) <= SKEW_THRESHOLD)
            ):
                found.append(
                    Anomaly(agent_id, now, "clock_skew", f"agent clock off by {skew:.1f} s")
                )
            conn.execute(
                "UPDATE agents SET last_seen=?, max_seq=MAX(max_seq, ?), "
                "backlog=COALESCE(?, backlog), skew=COALESCE(?, skew) WHERE id=?",
                (now, max_seq, backlog, skew, agent_id),
            )
            conn.executemany(
                "INSERT INTO anomalies (agent_id, at, kind, detail) VALUES (?,?,?,?)",
                [(a.agent_id, a.at, a.kind, a.detail) for a in found],
            )
        return found

    def anomalies(self, agent_id: str | None = None) -> list[Anomaly]:
        sql = "SELECT agent_id, at, kind, detail FROM anomalies"
        rows = (
            self.read(sql + " WHERE agent_id=? ORDER BY id", (agent_id,))
            if agent_id
            else (self.read(sql + " ORDER BY id"))
        )
        return [Anomaly(*r) for r in rows]

    def close(self) -> None:
        with self.lock:
            self.conn.close()


def _record(row: tuple[Any, ...]) -> AgentRecord:
    return AgentRecord(
        id=row[0],
        name=row[1],
        zone=row[2],
        enrolled=row[3],
        serial=row[4],
        not_after=row[5],
        last_seen=row[6],
        max_seq=row[7],
        backlog=row[8],
        skew=row[9],
        revoked=row[10],
    )
