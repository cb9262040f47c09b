"""The shipped playbooks: all load, are well-formed, and cover every starter-rule family."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from collector.models import Alert
from playbooks.loader import builtin_content_dir, load_builtin_playbooks
from playbooks.model import CheckStep, CloseStep, NoteStep, Playbook, QueryStep
from playbooks.selection import select_playbook

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "detections" / "rules"
T = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)

# detections/rules/<family>/ -> the playbook that must triage alerts of that family
FAMILY_PLAYBOOK = {
    "linux_execution": "linux-execution",
    "linux_credential": "credential-access",
    "linux_persistence": "persistence",
    "linux_discovery": "discovery",
    "network_listener": "new-listener",
    "network_policy": "segment-policy",
    "sekimori_integrity": "agent-integrity",
    "linux_impact": "ransomware-precursor",
}
# rules of a family whose members go to different playbooks: rule id -> playbook
RULE_PLAYBOOK = {
    "d90e485d-bd11-48cf-833c-3951f15e6bf2": "discovery",  # vertical port scan (sensor)
    "f83276db-0f6b-4548-8520-d233de405caa": "discovery",  # horizontal scan (sensor)
    "cd2a10f2-9b5c-4571-9444-c8cd69a337f2": "discovery",  # failed connection (scan base rule)
    "ce822cac-5b57-4bd2-a66f-383a110d19cc": "segment-policy",  # internet -> My Number attempt
    "sekimori-beacon": "c2-channel",  # collector analytics (no rule file)
    "sekimori-dns-tunnel": "c2-channel",
}
EXPECTED_IDS = {*FAMILY_PLAYBOOK.values(), *RULE_PLAYBOOK.values(), "default"}


@pytest.fixture(scope="module")
def shipped() -> tuple[Playbook, ...]:
    result = load_builtin_playbooks()
    assert result.errors == (), [str(e) for e in result.errors]
    return result.playbooks


def test_every_shipped_playbook_loads(shipped: tuple[Playbook, ...]) -> None:
    files = sorted(p.name for p in builtin_content_dir().glob("*.yaml"))
    assert len(shipped) == len(files) >= 8
    assert {p.id for p in shipped} == EXPECTED_IDS
    assert [p.id for p in shipped if p.applies_to.default] == ["default"]


@pytest.mark.parametrize("playbook_id", sorted(EXPECTED_IDS))
def test_shipped_playbooks_follow_the_house_conventions(
    shipped: tuple[Playbook, ...], playbook_id: str
) -> None:
    playbook = next(p for p in shipped if p.id == playbook_id)
    kinds = [type(step) for step in playbook.steps]
    assert kinds[0] is QueryStep, "look at the evidence first"
    assert CheckStep in kinds
    assert any(isinstance(s, NoteStep) and s.required for s in playbook.steps), "findings note"
    assert any(isinstance(s, CloseStep) and s.resolution is None for s in playbook.steps)
    questions = " ".join(s.question for s in playbook.steps if isinstance(s, CheckStep))
    assert "情報セキュリティ責任者" in questions, "every playbook asks about escalation"
    assert all(step.title for step in playbook.steps if not isinstance(step, CloseStep))


def rule_documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(RULES.rglob("*.yml")) + sorted(RULES.rglob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if isinstance(doc, dict) and "id" in doc:  # base rules and correlations alike
                docs.append((path.parent.name, doc))
    return docs


def test_there_are_starter_rules_to_check() -> None:
    families = {family for family, _ in rule_documents()}
    assert families >= set(FAMILY_PLAYBOOK), "starter-rule families moved: update FAMILY_PLAYBOOK"


@pytest.mark.parametrize(
    ("family", "rule"), rule_documents(), ids=[str(d.get("title")) for _, d in rule_documents()]
)
def test_each_starter_rule_gets_its_family_playbook(
    shipped: tuple[Playbook, ...], family: str, rule: dict[str, Any]
) -> None:
    tags = tuple(str(tag) for tag in rule.get("tags", []))
    by_id = Alert(
        id="a",
        rule_id=str(rule["id"]),
        title=str(rule["title"]),
        level="high",
        tags=tags,
        host="h",
        zone=None,
        entity="h",
        count=1,
        first_seen=T,
        last_seen=T,
        event_ids=(),
    )
    expected = RULE_PLAYBOOK.get(str(rule["id"]), FAMILY_PLAYBOOK.get(family))
    assert expected is not None, f"rule family {family!r} has no playbook: add one"
    chosen = select_playbook(by_id, shipped)
    if expected is not None:
        assert chosen.id == expected
        # tags alone (a new rule of the same family, id not yet listed) lead there too
        by_tags = replace(by_id, rule_id="not-listed")
        assert select_playbook(by_tags, shipped).id == expected


@pytest.mark.parametrize("rule_id", ["sekimori-beacon", "sekimori-dns-tunnel"])
def test_analytics_alerts_get_the_c2_playbook(shipped: tuple[Playbook, ...], rule_id: str) -> None:
    from collector.analytics.beacon import BEACON_TAGS
    from collector.analytics.dnstunnel import DNS_TUNNEL_TAGS

    tags = BEACON_TAGS if rule_id == "sekimori-beacon" else DNS_TUNNEL_TAGS
    alert = Alert(
        id="a",
        rule_id=rule_id,
        title="t",
        level="high",
        tags=tags,
        host="10.10.0.11",
        zone="internet",
        entity="e",
        count=1,
        first_seen=T,
        last_seen=T,
        event_ids=(),
    )
    assert select_playbook(alert, shipped).id == "c2-channel"
    assert select_playbook(replace(alert, rule_id="x"), shipped).id == "c2-channel"


def _doc_yaml_blocks() -> list[str]:
    text = (REPO / "docs" / "playbooks.md").read_text(encoding="utf-8")
    return [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]


def test_the_documented_examples_are_valid(shipped: tuple[Playbook, ...]) -> None:
    from playbooks.loader import parse_playbook
    from playbooks.triage_io import AnswersFileIO, parse_answers

    example, answers = _doc_yaml_blocks()
    documented = parse_playbook(example, source="docs/playbooks.md")
    assert documented.id == "linux-execution"
    execution = next(p for p in shipped if p.id == "linux-execution")
    io = AnswersFileIO(parse_answers(yaml.safe_load(answers)))
    io.check_playbook(execution)
    assert io.answers["resolve"] == "true_positive"
