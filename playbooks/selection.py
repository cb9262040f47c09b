"""Pick the playbook for an alert: by rule id, then by tag, then the default.

Tag matching is hierarchical: a playbook tag ``attack.t1059`` matches the alert tag
``attack.t1059.004``. Among tag matches the highest ``applies_to.priority`` wins, then the
most specific matching tag (most dot-separated parts), then the most matching tags, then the
playbook id (so the choice is deterministic).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from agents.errors import NotFoundError
from collector.models import Alert
from playbooks.model import Playbook


def tag_matches(pattern: str, tag: str) -> bool:
    """True if playbook tag ``pattern`` covers alert tag ``tag`` (equal or a parent of it)."""
    pattern, tag = pattern.lower(), tag.lower()
    return tag == pattern or tag.startswith(pattern + ".")


def _tag_score(playbook: Playbook, alert_tags: Sequence[str]) -> tuple[int, int, int] | None:
    specificity = 0
    matched = 0
    for pattern in playbook.applies_to.tags:
        if any(tag_matches(pattern, tag) for tag in alert_tags):
            matched += 1
            specificity = max(specificity, pattern.count(".") + 1)
    if not matched:
        return None
    return (playbook.applies_to.priority, specificity, matched)


def select_playbook(alert: Alert, playbooks: Iterable[Playbook]) -> Playbook:
    """The playbook for ``alert``. Raises NotFoundError if none applies and there is no default."""
    candidates = sorted(playbooks, key=lambda p: p.id)
    for playbook in candidates:
        if alert.rule_id in playbook.applies_to.rule_ids:
            return playbook
    best: tuple[tuple[int, int, int], Playbook] | None = None
    for playbook in candidates:
        score = _tag_score(playbook, alert.tags)
        if score is not None and (best is None or score > best[0]):
            best = (score, playbook)
    if best is not None:
        return best[1]
    for playbook in candidates:
        if playbook.applies_to.default:
            return playbook
    raise NotFoundError(
        f"no playbook applies to alert {alert.id!r}"
        f" (rule {alert.rule_id!r}, tags {list(alert.tags)})",
        remedy="add a playbook with applies_to.default: true, or one naming this rule or tag",
    )
