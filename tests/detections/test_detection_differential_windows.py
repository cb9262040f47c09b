"""Differential check on the SigmaHQ conformance corpus: streaming engine vs pySigma sqlite.

For each regression case, the case's rule is converted with ``sigma.backends.sqlite`` (no field
mapping: flat Sysmon/Security names), the routed events of its EVTX sample are loaded into an
in-memory table (alias fields such as Security 4688's ``Image`` included, as the engine sees
them) and the query's rows must equal the engine's matches. Rules the backend cannot express
are listed, never silently passed.
"""

from __future__ import annotations

import re
import sqlite3
from typing import Any

import yaml
from sigma.collection import SigmaCollection

from detections import RuleSet
from detections.conformance import regression_cases
from detections.convert import backend_for
from detections.readers import iter_events
from detections.windows import event_key, with_aliases
from tests.detections.conftest import SIGMA_ROOT, require_shared

# Rules the sqlite backend cannot convert (the engine is checked by conformance instead).
NOT_CONVERTIBLE: set[str] = set()


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | dict):
        return str(value)
    return value


def _regexp(pattern: str, value: Any) -> bool:
    return value is not None and re.search(pattern, str(value)) is not None


def test_sqlite_backend_agrees_on_every_conformance_case(sigma_corpus: RuleSet) -> None:
    compared = 0
    unconvertible: list[str] = []
    disagreements: list[str] = []
    for info in regression_cases(require_shared(SIGMA_ROOT)):
        data = yaml.safe_load(info.read_text(encoding="utf-8")) or {}
        rule_id = str((data.get("rule_metadata") or [{}])[0].get("id", ""))
        if rule_id not in sigma_corpus:
            continue
        rule = sigma_corpus.get(rule_id)
        single = RuleSet([rule])
        events = []
        for sample in info.parent.glob("*.evtx"):
            for event in iter_events(sample):
                key = event_key(event)
                if key is not None and single.candidates(event):
                    events.append(with_aliases(event, key))
        try:
            collection = SigmaCollection.from_yaml(rule.source.read_text(encoding="utf-8"))
            (query,) = backend_for("sqlite", None).convert(collection)
        except Exception as exc:  # noqa: BLE001 - listed below
            unconvertible.append(f"{rule.title}: {exc}")
            continue
        columns: dict[str, str] = {}
        for event in events:
            for name in event:
                columns.setdefault(name.lower(), name)
        for name in rule.fields:
            columns.setdefault(name.lower(), name)
        names = sorted(columns.values())
        db = sqlite3.connect(":memory:")
        db.create_function("regexp", 2, _regexp, deterministic=True)
        quoted = ", ".join(f'"{c}"' for c in names)
        db.execute(f"CREATE TABLE logs (row INTEGER, {quoted})")
        marks = ", ".join("?" for _ in range(len(names) + 1))
        db.executemany(
            f"INSERT INTO logs VALUES ({marks})",  # noqa: S608 - our own column names
            [[i, *(_cell(e.get(c)) for c in names)] for i, e in enumerate(events)],
        )
        from_sql = {row for (row,) in db.execute(query.replace("SELECT *", "SELECT row", 1))}
        from_engine = {i for i, e in enumerate(events) if rule.predicate(e)}
        compared += 1
        if from_sql != from_engine:
            disagreements.append(f"{rule.title}: engine {from_engine} sqlite {from_sql}")
    assert not disagreements, "\n".join(disagreements)
    assert {u.split(":")[0] for u in unconvertible} == NOT_CONVERTIBLE, unconvertible
    assert compared >= 120
