"""Walk the shipped rule corpus: metadata conventions and every rule's sample events.

Each ``<rule>.yml`` has a ``<rule>.samples.json`` next to it:
``{"match": [...], "nomatch": [...], "also_matches": ["<other rule id>", ...]}``. Every
``match`` event must fire the rule (and no other rule unless listed in ``also_matches``);
no ``nomatch`` event may fire it.
"""

from __future__ import annotations

import json
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from detections import CompiledRule, RuleSet, default_rules_dir, load_rules

RULES_DIR = default_rules_dir()
RULE_FILES = sorted(p for p in RULES_DIR.rglob("*") if p.suffix in (".yml", ".yaml"))
FAMILIES = {
    "linux_execution",
    "linux_credential",
    "linux_persistence",
    "linux_discovery",
    "network_policy",
    "network_listener",
    "sekimori_integrity",
    "network_scan",
    "linux_impact",
}


@cache
def corpus() -> RuleSet:
    return load_rules([RULES_DIR])


def samples_for(rule: CompiledRule) -> dict[str, Any]:
    path = rule.source.with_name(rule.source.stem + ".samples.json")
    assert path.is_file(), f"{rule.source.name} has no samples file {path.name}"
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    assert set(data) <= {"match", "nomatch", "also_matches"}, path
    return data


def rule_ids() -> list[str]:
    return [rule.rule_id for rule in corpus()]


def test_corpus_loads_cleanly() -> None:
    ruleset = corpus()
    assert ruleset.errors == []
    assert ruleset.skipped == []
    # a file holds one rule, or one correlation rule, or a rule and the correlation it feeds
    assert len(RULE_FILES) <= len(ruleset) + len(ruleset.correlations) <= 2 * len(RULE_FILES)
    assert len(ruleset) >= 12


def test_every_yaml_is_a_rule_and_every_samples_file_has_a_rule() -> None:
    stems = {p.with_suffix("") for p in RULE_FILES}
    for samples in RULES_DIR.rglob("*.samples.json"):
        assert samples.with_name(samples.name.removesuffix(".samples.json")) in stems, samples


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.stem)
def test_rule_metadata(path: Path) -> None:
    for raw in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        check_metadata(path, raw)


def check_metadata(path: Path, raw: dict[str, Any]) -> None:
    assert path.parent.name in FAMILIES
    assert str(uuid.UUID(raw["id"], version=4)) == raw["id"]
    assert raw["author"] == "sekimori"
    assert raw["level"] in {"informational", "low", "medium", "high", "critical"}
    assert raw["description"].strip()
    assert any(tag.startswith("attack.t") for tag in raw["tags"]), "needs an ATT&CK technique"
    assert any(tag.startswith("attack.") and tag[7:8] != "t" for tag in raw["tags"])


@pytest.mark.parametrize("rule_id", rule_ids())
def test_samples(rule_id: str) -> None:
    ruleset = corpus()
    rule = ruleset.get(rule_id)
    data = samples_for(rule)
    allowed = {rule_id, *data.get("also_matches", [])}
    assert data["match"], f"{rule.title}: needs at least one match sample"
    assert data["nomatch"], f"{rule.title}: needs at least one nomatch sample"
    for index, event in enumerate(data["match"]):
        fired = {m.rule_id for m in ruleset.match(event)}
        if rule_id in ruleset.silent and rule in ruleset.fired(event):
            fired.add(rule_id)  # feeds a correlation only: fires, raises nothing itself
        assert rule_id in fired, f"{rule.title}: match[{index}] did not fire"
        others = fired - allowed
        names = [ruleset.get(i).title for i in others]
        assert not others, f"{rule.title}: match[{index}] also fired {names}"
    for index, event in enumerate(data["nomatch"]):
        assert rule not in ruleset.fired(event), f"{rule.title}: nomatch[{index}] fired"


@pytest.mark.parametrize("corr_id", [c.corr_id for c in corpus().correlations])
def test_correlation_samples(corr_id: str) -> None:
    from detections.samples import check_correlation_samples

    ruleset = corpus()
    (spec,) = [c for c in ruleset.correlations if c.corr_id == corr_id]
    report = check_correlation_samples(ruleset, spec)
    assert report.ok and report.checked, report.problems


def test_match_records_carry_rule_metadata() -> None:
    ruleset = corpus()
    rule = next(r for r in ruleset if r.title.startswith("Base64-Decoded"))
    event = samples_for(rule)["match"][0]
    (match,) = ruleset.match(event)
    assert match.rule_id == rule.rule_id
    assert match.rule_title == rule.title
    assert match.level == "high"
    assert "attack.t1140" in match.tags
    assert match.description
    assert match.event_id == event["event"]["id"]


def test_brief_example_base64_pipeline_matches() -> None:
    """The agent sees ``sh -c '...'``, then ``base64 -d`` and a child ``sh``: one alert."""
    ruleset = corpus()
    parent = {
        "event": {"id": "x1", "kind": "event", "action": "exec"},
        "process": {
            "pid": 4242,
            "name": "sh",
            "executable": "/usr/bin/dash",
            "command_line": "sh -c echo aWQ= | base64 -d | sh",
            "args": ["sh", "-c", "echo aWQ= | base64 -d | sh"],
            "parent": {"pid": 4000, "executable": "/usr/bin/bash", "command_line": "-bash"},
        },
        "sekimori": {"kind": "process_start"},
    }
    decoder = {
        "process": {
            "pid": 4243,
            "executable": "/usr/bin/base64",
            "command_line": "base64 -d",
            "parent": {"pid": 4242, "command_line": "sh -c echo aWQ= | base64 -d | sh"},
        },
        "sekimori": {"kind": "process_start"},
    }
    assert [m.rule_title for m in ruleset.match(parent)] == [
        "Base64-Decoded Payload Executed by a Shell"
    ]
    assert ruleset.match(decoder) == []


def test_events_are_routed_by_kind() -> None:
    ruleset = corpus()
    listen_rule = next(r for r in ruleset if r.kinds == {"network_listen"})
    event = samples_for(listen_rule)["match"][0]
    assert ruleset.match(event)
    relabelled = {**event, "sekimori": {**event["sekimori"], "kind": "process_start"}}
    assert ruleset.match(relabelled) == []
    assert ruleset.match({"process": {"command_line": "nmap"}}) == []  # no kind at all
