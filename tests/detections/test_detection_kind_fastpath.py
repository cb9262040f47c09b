"""Our own (nested ECS) events take the generated-code path over a flat view
(:func:`detections.codegen.flat_view`); it must answer exactly what the reference closures
answer on the nested event, for the shipped rules and for SigmaHQ's Linux rules."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest

from agents.schema import set_path
from detections import RuleSet, default_rules_dir, load_rules
from detections.anchors import rule_anchors
from detections.codegen import flat_view
from detections.compiler import make_getter
from tests.detections.conftest import SIGMA_ROOT, require_shared


@pytest.fixture(scope="module")
def ruleset() -> RuleSet:
    rules = load_rules([default_rules_dir(), require_shared(SIGMA_ROOT / "rules" / "linux")])
    kinds = {kind for rule in rules for kind in rule.kinds}
    assert len(rules) > 100 and {"process_start", "network_connection"} <= kinds
    return rules


def sample_events() -> list[dict[str, Any]]:
    events = []
    for path in sorted(default_rules_dir().rglob("*.samples.json")):
        samples = json.loads(path.read_text(encoding="utf-8"))
        events += samples.get("match", []) + samples.get("nomatch", [])
    assert len(events) > 50
    return events


def anchored_events(ruleset: RuleSet) -> Iterator[dict[str, Any]]:
    """One event per rule anchor: the anchor's literal planted in its field of a sample-like
    process event (so many SigmaHQ rules are close to firing, some fire)."""
    base = {"sekimori": {"kind": "process_start"}, "event": {"id": "x"}}
    for rule in ruleset:
        for kind in sorted(rule.kinds):
            for _, field, literal in sorted(rule_anchors(rule.condition) or (), key=str):
                if field is None:
                    continue
                event = copy.deepcopy(base)
                event["sekimori"]["kind"] = kind
                set_path(event, field, literal)
                set_path(event, "process.command_line", f"sh -c {literal}")
                yield event


def variants(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The event, and edits that stress the flat view: case, lists, nulls, missing parents,
    a dotted top-level key (reference fallback), an object where a string was."""
    yield event
    upper = json.loads(json.dumps(event).upper().replace('"SEKIMORI"', '"sekimori"'))
    upper["sekimori"] = event.get("sekimori", {})
    yield upper
    process = event.get("process")
    if isinstance(process, dict):
        for key in list(process):
            edited = copy.deepcopy(event)
            value = edited["process"][key]
            edited["process"][key] = [value, "x"] if not isinstance(value, list) else None
            yield edited
        flattened = copy.deepcopy(event)
        flattened["process.command_line"] = "dotted key wins"
        yield flattened
        gone = copy.deepcopy(event)
        del gone["process"]
        yield gone
        replaced = copy.deepcopy(event)
        replaced["process"] = "not an object"
        yield replaced


def ids(rules: list[Any]) -> list[str]:
    return [rule.rule_id for rule in rules]


def test_fast_path_agrees_with_reference_on_our_events(ruleset: RuleSet) -> None:
    checked = fired = 0
    events = sample_events() + list(anchored_events(ruleset))
    for base in events:
        for event in variants(base):
            reference = ids(ruleset.fired_reference(event))
            assert ids(ruleset.fired(event)) == reference, json.dumps(event)[:400]
            checked += 1
            fired += len(reference)
    assert checked > 1_000 and fired > 100, (checked, fired)  # the check saw real matches


@pytest.mark.parametrize(
    "event",
    [
        {"process": {"parent": {"pid": 1, "name": "sh"}, "args": ["a", {"b": 1}]}, "n": None},
        {"a": {"b": {"c": {"d": "deep"}}}, "e": [], "f": 0, "g": False, "h": 1.5},
        {"process": {}},
    ],
)
def test_flat_view_answers_what_the_getter_answers(event: dict[str, Any]) -> None:
    view = flat_view(event)
    assert view is not None
    paths = {"process", "process.parent", "process.parent.pid", "process.args", "process.x",
             "n", "n.x", "a.b", "a.b.c.d", "a.b.c.d.e", "e", "f", "g.h", "h", "process.parent.name"}  # fmt: skip
    for path in paths:
        assert view.get(path) == make_getter(path)(event), path


def test_flat_view_refuses_events_it_cannot_mirror() -> None:
    assert flat_view({"process.pid": 1}) is None
    assert flat_view({"process": {"parent.pid": 1}}) is None


def _contract_leaves(event: dict[str, Any]) -> dict[str, Any] | None:
    """The leaves the ingest validator hands over (``ParsedBatch.leaves``) for an event of the
    agent contract's shape (nested non-empty dicts, no dotted keys, only FIELD_TYPES paths),
    or None for an event that would never come with leaves."""
    from agents.schema import FIELD_TYPES, flatten

    def plain(node: dict[str, Any]) -> bool:
        return bool(node) and all(
            "." not in key and (type(value) is not dict or plain(value))
            for key, value in node.items()
        )

    if not plain(event):
        return None
    leaves = dict(flatten(event))
    return leaves if set(leaves) <= set(FIELD_TYPES) else None


def test_contract_leaves_answer_what_the_flat_view_answers(ruleset: RuleSet) -> None:
    """The ingest path passes the validator's leaves instead of building the flat view."""
    checked = fired = 0
    for base in sample_events() + list(anchored_events(ruleset)):
        for event in variants(base):
            leaves = _contract_leaves(event)
            if leaves is None:
                continue
            expected = [m.rule_id for m in ruleset.match(event)]
            assert [m.rule_id for m in ruleset.match(event, leaves)] == expected, event
            reference = [r.rule_id for r in ruleset.fired_reference(event)]
            assert set(expected) <= set(reference)
            checked += 1
            fired += len(expected)
    assert checked > 300 and fired > 50, (checked, fired)


def test_a_rule_naming_an_object_path_keeps_the_flat_view(tmp_path: Any) -> None:
    """``process.parent`` is an object in a contract event, absent from its leaves: a rule
    that names it must still see the object (here: it is not null, so the rule stays quiet)."""
    (tmp_path / "parent_null.yml").write_text(
        "title: parent is null\nid: 1f0c0a51-0000-4000-8000-000000000001\nstatus: test\n"
        "logsource: {category: process_creation, product: linux}\nlevel: low\n"
        "detection:\n  sel:\n    process.parent: null\n    process.name: bash\n"
        "  condition: sel\n",
        encoding="utf-8",
    )
    rules = load_rules([tmp_path])
    assert not rules.errors and len(rules) == 1
    event = {
        "sekimori": {"kind": "process_start"},
        "process": {"name": "bash", "pid": 5, "parent": {"pid": 1}},
    }
    leaves = _contract_leaves(event)
    assert leaves is not None and "process.parent" not in leaves
    assert rules.fired_reference(event) == []
    assert rules.match(event, leaves) == [] == rules.match(event)
    orphan = {"sekimori": {"kind": "process_start"}, "process": {"name": "bash", "pid": 5}}
    assert len(rules.match(orphan, _contract_leaves(orphan))) == 1
