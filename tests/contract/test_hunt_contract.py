"""Retro hunts on every store, and the differential test: streaming alerts == hunt alerts.

The events are every sample of the starter rules (match and nomatch), in time order. The
reference is the streaming path (RuleSet.match -> AlertManager) over an in-memory store.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from agents.schema import get_path, parse_iso
from collector.alerts import AlertManager
from collector.hunt import parse_age, parse_since, run_hunt
from collector.hunt_plan import plan_rule
from collector.store.base import Store
from collector.store.sqlite import SqliteStore
from detections import RuleSet, default_rules_dir, load_rules


@pytest.fixture(scope="module")
def rules() -> RuleSet:
    loaded = load_rules([default_rules_dir()])
    assert loaded.errors == []
    return loaded


@pytest.fixture(scope="module")
def corpus(rules: RuleSet) -> list[dict[str, Any]]:
    events: dict[str, dict[str, Any]] = {}
    for rule in rules.rules:
        samples = json.loads(rule.source.with_name(rule.source.stem + ".samples.json").read_text())
        for event in samples.get("match", []) + samples.get("nomatch", []):
            events[str(get_path(event, "event.id"))] = event
    ordered = sorted(
        events.values(), key=lambda e: (e["@timestamp"], e["agent"]["id"], e["sekimori"]["seq"])
    )
    assert len(ordered) > 40
    return ordered


def _streaming(rules: RuleSet, events: list[dict[str, Any]], store: Store) -> None:
    manager = AlertManager(store)
    for event in events:
        result = store.write_events([event])
        if result.new_ids:
            for match in rules.match(event):
                manager.record(match, event)


def _alerts(store: Store) -> list[dict[str, Any]]:
    return sorted((a.to_json() for a in store.list_alerts(limit=10_000)), key=lambda a: a["id"])


def _window(events: list[dict[str, Any]]) -> tuple[Any, Any]:
    times = [parse_iso(e["@timestamp"]) for e in events]
    return min(times) - timedelta(seconds=1), max(times) + timedelta(seconds=1)


@pytest.fixture(scope="module")
def reference(rules: RuleSet, corpus: list[dict[str, Any]]) -> list[dict[str, Any]]:
    memory = SqliteStore(":memory:")
    _streaming(rules, corpus, memory)
    expected = _alerts(memory)
    memory.close()
    # every rule fires, except those that only feed correlations (RuleSet.silent)
    assert len({a["rule_id"] for a in expected}) == len(rules.rules) - len(rules.silent)
    return expected


def test_hunt_alerts_equal_streaming_alerts(
    store: Store, rules: RuleSet, corpus: list[dict[str, Any]], reference: list[dict[str, Any]]
) -> None:
    store.write_events(corpus)
    since, until = _window(corpus)
    report = run_hunt(store, rules, since=since, until=until, step=timedelta(minutes=7))
    assert _alerts(store) == reference
    assert report.new_alerts == len(reference)
    queried = [p for p in report.plans if p.strategy == "query"]
    assert len(queried) >= 8, [p.to_json() for p in report.plans if p.strategy == "scan"]
    # a second hunt finds only what it already raised
    again = run_hunt(store, rules, since=since, until=until)
    assert (again.new_alerts, again.updated_alerts) == (0, 0)
    assert again.known == again.matches > 0
    assert _alerts(store) == reference


def test_hunt_after_streaming_raises_nothing_new(
    store: Store, rules: RuleSet, corpus: list[dict[str, Any]], reference: list[dict[str, Any]]
) -> None:
    _streaming(rules, corpus, store)
    assert _alerts(store) == reference
    since, until = _window(corpus)
    report = run_hunt(store, rules, since=since, until=until)
    assert (report.new_alerts, report.updated_alerts) == (0, 0)
    assert _alerts(store) == reference


def test_hunt_respects_the_window(
    store: Store, rules: RuleSet, corpus: list[dict[str, Any]]
) -> None:
    store.write_events(corpus)
    _, until = _window(corpus)
    report = run_hunt(
        store, rules, since=until + timedelta(seconds=1), until=until + timedelta(hours=1)
    )
    assert (report.examined, report.matches, store.list_alerts()) == (0, 0, [])


def test_plan_falls_back_where_a_query_could_miss(store: Store, rules: RuleSet) -> None:
    plans = {p.title: p for p in (plan_rule(r, store.hunt_dialect) for r in rules.rules)}
    shell = next(p for t, p in plans.items() if "Reverse Shell" in t)
    if store.hunt_dialect == "sqlite":
        assert shell.strategy == "query"  # REGEXP is Python's re, same as streaming
        assert shell.condition and "REGEXP" in shell.condition
    else:
        assert (shell.strategy, shell.reason.split(" ")[0]) == ("scan", "regular")
        proxy = next(p for t, p in plans.items() if "Proxy" in t)
        assert proxy.condition and "sekimori.zone.source.ci:internet" in proxy.condition


def test_ages() -> None:
    assert parse_age("30d") == timedelta(days=30)
    assert parse_age(" 12h") == timedelta(hours=12)
    assert parse_since("2026-11-01T00:00:00Z").day == 1
    with pytest.raises(Exception, match="not an age"):
        parse_age("30 days")
