"""Paged event scans and Sigma-SQL hunts for the SQLite store.

Retro hunts run the SQL that ``pysigma-backend-sqlite`` produces against a temporary view
``logs`` with one column per ECS field (``agents.schema.FIELD_TYPES``), extracted from the
stored JSON. Columns use ``COLLATE NOCASE`` because Sigma string matching is case-insensitive
by default (``LIKE`` already is, ``=`` then is too); ``REGEXP`` is Python's ``re.search``,
the same regex engine the streaming matcher uses.

SQL text here is assembled from constant column names, ``?`` placeholders and the SQL the
pySigma backend generated from a rule file the operator chose to hunt with.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any, Final

from agents.schema import FIELD_TYPES

PAGE: Final = 5000
LOGS_VIEW: Final = "logs"


def _json_path(field: str) -> str:
    return "$." + ".".join(f'"{part}"' for part in field.split("."))


def view_sql() -> str:
    columns = [
        f"json_extract(CAST(doc AS TEXT), '{_json_path(field)}') COLLATE NOCASE AS \"{field}\""
        for field in FIELD_TYPES
    ]
    return (
        f"CREATE TEMP VIEW IF NOT EXISTS {LOGS_VIEW} AS SELECT id AS _id, ts AS _ts, host AS _host,"  # noqa: S608
        f" kind AS _kind, pid AS _pid, agent_id AS _agent, seq AS _seq, doc AS _doc, "
        + ", ".join(columns)
        + " FROM events"
    )


@lru_cache(maxsize=512)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str | None, value: object) -> bool:
    if pattern is None or value is None:
        return False
    return _compiled(pattern).search(str(value)) is not None


def prepare(conn: sqlite3.Connection) -> None:
    """Register REGEXP and create the ``logs`` view on this connection (idempotent)."""
    conn.create_function("REGEXP", 2, _regexp, deterministic=True)
    conn.execute(view_sql())


def conditions(
    terms: Iterable[tuple[str, Any]], members: Mapping[str, Sequence[Any]] | None = None
) -> tuple[list[str], list[Any]]:
    """SQL conditions and their parameters: each ``("column op ?", value)`` term whose value
    is not None, and ``column IN (...)`` for each non-empty member list."""
    where: list[str] = []
    params: list[Any] = []
    for fragment, value in terms:
        if value is not None:
            where.append(fragment)
            params.append(value)
    for column, values in (members or {}).items():
        if values:
            where.append(f"{column} IN ({','.join('?' * len(values))})")
            params.extend(values)
    return where, params


def where_sql(where: Sequence[str]) -> str:
    return " WHERE " + " AND ".join(where) if where else ""


def where_clause(
    host: str | None,
    since: float | None,
    until: float | None,
    filters: dict[str, tuple[Any, ...]],
) -> tuple[list[str], list[Any]]:
    """Filters over the ``logs`` view's underscore columns."""
    return conditions((("_host = ?", host), ("_ts >= ?", since), ("_ts <= ?", until)), filters)


def scan(
    read: Any,
    where: list[str],
    params: list[Any],
    condition: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Pages of matching events, oldest first (keyset pagination on ts, agent, seq, id).

    ``read(sql, params)`` runs one query under the store's lock; no lock is held between pages.
    """
    import orjson

    clauses = list(where)
    if condition is not None:
        clauses.append(f"({condition})")
    after: tuple[Any, ...] | None = None
    while True:
        page_where = list(clauses)
        page_params = list(params)
        if after is not None:
            page_where.append("(_ts, _agent, _seq, _id) > (?, ?, ?, ?)")
            page_params.extend(after)
        sql = f"SELECT _ts, _agent, _seq, _id, _doc FROM {LOGS_VIEW}"  # noqa: S608
        if page_where:
            sql += " WHERE " + " AND ".join(page_where)
        sql += f" ORDER BY _ts, _agent, _seq, _id LIMIT {PAGE}"
        rows = read(sql, page_params)
        for row in rows:
            yield orjson.loads(row[4])
        if len(rows) < PAGE:
            return
        after = tuple(rows[-1][:4])
