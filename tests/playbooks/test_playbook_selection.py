"""select_playbook: rule id, then tag (priority, specificity, matches), then the default."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.errors import NotFoundError
from collector.models import Alert
from playbooks.model import AppliesTo, CloseStep, Playbook
from playbooks.selection import select_playbook, tag_matches

T = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)


def pb(playbook_id: str, **applies: object) -> Playbook:
    return Playbook(
        id=playbook_id,
        title=playbook_id,
        description="",
        version=1,
        applies_to=AppliesTo(**applies),  # type: ignore[arg-type]
        steps=(CloseStep(id="close", resolution="benign"),),
    )


def alert(rule_id: str = "r-1", tags: tuple[str, ...] = ()) -> Alert:
    return Alert(
        id="a",
        rule_id=rule_id,
        title="t",
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


EXECUTION = pb("execution", tags=("attack.execution", "attack.t1059"))
LISTENER = pb("listener", tags=("attack.command_and_control",))
POLICY = pb("policy", tags=("sekimori.policy",), priority=10)
BY_RULE = pb("by-rule", rule_ids=("r-42",))
DEFAULT = pb("default", default=True)
ALL = [DEFAULT, LISTENER, POLICY, EXECUTION, BY_RULE]


def test_rule_id_wins_over_tags() -> None:
    assert select_playbook(alert("r-42", ("attack.execution",)), ALL) is BY_RULE


def test_tags_match_hierarchically() -> None:
    assert tag_matches("attack.t1059", "attack.t1059.004")
    assert tag_matches("attack.t1059", "ATTACK.T1059")
    assert not tag_matches("attack.t1059", "attack.t10590")
    assert not tag_matches("attack.t1059.004", "attack.t1059")
    assert select_playbook(alert(tags=("attack.t1059.004",)), ALL) is EXECUTION


def test_more_matching_tags_win() -> None:
    tags = ("attack.execution", "attack.t1059.004", "attack.command_and_control")
    assert select_playbook(alert(tags=tags), ALL) is EXECUTION


def test_priority_wins_over_other_tag_matches() -> None:
    tags = ("attack.command_and_control", "attack.t1059", "sekimori.policy.proxy_egress")
    assert select_playbook(alert(tags=tags), ALL) is POLICY


def test_more_specific_tag_wins_at_equal_priority() -> None:
    specific = pb("specific", tags=("attack.t1059.004",))
    tags = ("attack.t1059.004",)
    assert select_playbook(alert(tags=tags), [EXECUTION, specific]) is specific


def test_default_and_no_match() -> None:
    assert select_playbook(alert(tags=("attack.impact",)), ALL) is DEFAULT
    with pytest.raises(NotFoundError, match="no playbook applies") as info:
        select_playbook(alert(tags=("attack.impact",)), [EXECUTION])
    assert "default: true" in (info.value.remedy or "")


def test_selection_is_deterministic_whatever_the_order() -> None:
    twin = pb("a-twin", tags=("attack.execution", "attack.t1059"))
    tags = ("attack.execution",)
    assert select_playbook(alert(tags=tags), [EXECUTION, twin]) is twin
    assert select_playbook(alert(tags=tags), [twin, EXECUTION]) is twin
