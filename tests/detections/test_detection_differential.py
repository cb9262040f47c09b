"""Differential test: the streaming engine and pySigma's SQLite backend must agree.

Every sample event of the shipped corpus is flattened into a row of an in-memory SQLite table
(dotted ECS column names, lists as JSON text, booleans as 'true'/'false'); each rule is
converted with ``sigma.backends.sqlite`` through the same sekimori pipeline, and for every event
routed to the rule's kinds the engine's verdict must equal "the query returns this row".
Routing by ``sekimori.kind`` is done outside SQL (the backend has no logsource routing).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from sigma.backends.sqlite import sqliteBackend  # type: ignore[attr-defined]
from sigma.collection import SigmaCollection

from agents.schema import flatten
from detections import CompiledRule, RuleSet, default_rules_dir, load_rules, sekimori_pipeline
from tests.detections.conftest import make_event, rule_yaml
from tests.detections.test_detection_semantics import STRING_CASES


@cache
def corpus() -> RuleSet:
    return load_rules([default_rules_dir()])


@cache
def sample_events() -> tuple[dict[str, Any], ...]:
    events: list[dict[str, Any]] = []
    for path in sorted(default_rules_dir().rglob("*.samples.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        events.extend(data["match"] + data["nomatch"])
    return tuple(events)


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and len(value) == 1 and not isinstance(value[0], list | dict):
        return _cell(value[0])  # a one-item list (e.g. tags) compares as its item
    if isinstance(value, list | dict):
        return json.dumps(value)  # longer lists: not comparable in one SQL column
    return value


def _regexp(pattern: str, value: Any) -> bool:
    if value is None:
        return False
    return re.search(pattern, str(value)) is not None


def _database(rule: CompiledRule) -> tuple[sqlite3.Connection, list[dict[str, Any]]]:
    events = [e for e in sample_events() if e["sekimori"]["kind"] in rule.kinds]
    rows = [dict(flatten(e)) for e in events]
    columns = sorted({c for row in rows for c in row} | set(rule.fields))
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, _regexp, deterministic=True)
    quoted = ", ".join(f'"{c}"' for c in columns)
    db.execute(f"CREATE TABLE logs ({quoted})")
    placeholders = ", ".join("?" for _ in columns)
    db.executemany(
        f"INSERT INTO logs ({quoted}) VALUES ({placeholders})",  # noqa: S608 - our own columns
        [[_cell(row.get(c)) for c in columns] for row in rows],
    )
    return db, events


def _backend() -> Any:
    """pySigma's SQLite backend with our pipeline; '=' made case-insensitive like Sigma."""
    return sqliteBackend(processing_pipeline=sekimori_pipeline(), collate_nocase=True)  # type: ignore[no-untyped-call]


def _query(rule: CompiledRule) -> str:
    text = rule.source.read_text(encoding="utf-8")
    collection = SigmaCollection.from_yaml(text, resolve_references=False)
    # a file may also hold the correlations the rule feeds: convert the rule alone
    (sigma_rule,) = [r for r in collection.rules if str(r.id) == rule.rule_id]
    (query,) = _backend().convert(SigmaCollection([sigma_rule]))
    assert isinstance(query, str)
    return query


def _rules() -> Iterator[str]:
    yield from (rule.rule_id for rule in corpus())


@pytest.mark.parametrize("rule_id", list(_rules()))
def test_sqlite_backend_agrees_with_streaming_engine(rule_id: str) -> None:
    rule = corpus().get(rule_id)
    db, events = _database(rule)
    sql = _query(rule).replace("SELECT *", "SELECT rowid", 1)
    from_sql = {row[0] for row in db.execute(sql)}
    from_engine = {i for i, event in enumerate(events, 1) if rule.matches(event)}
    assert from_engine, f"{rule.title}: no routed sample matched; the comparison is vacuous"
    disagreements = [
        (events[i - 1]["event"]["id"], i in from_engine, i in from_sql)
        for i in sorted(from_sql ^ from_engine)
    ]
    assert not disagreements, f"{rule.title}: (event, engine, sqlite) {disagreements}"


@pytest.mark.parametrize(("selection", "value", "expected"), STRING_CASES)
def test_sqlite_backend_agrees_on_string_semantics(
    tmp_path: Path, selection: dict[str, Any], value: str, expected: bool
) -> None:
    path = tmp_path / "rule.yml"
    path.write_text(rule_yaml({"sel": selection, "condition": "sel"}), encoding="utf-8")
    ruleset = load_rules([path])
    (rule,) = ruleset.rules
    (sql,) = _backend().convert(SigmaCollection.from_yaml(path.read_text(encoding="utf-8")))
    db = sqlite3.connect(":memory:")
    db.create_function("regexp", 2, _regexp, deterministic=True)
    db.execute('CREATE TABLE logs ("process.command_line")')
    db.execute("INSERT INTO logs VALUES (?)", (value,))
    from_sql = bool(list(db.execute(sql)))
    assert rule.matches(make_event(process__command_line=value)) is expected
    assert from_sql is expected, sql
