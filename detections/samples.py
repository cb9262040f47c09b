"""Run each rule's sample events (``<rule>.samples.json`` next to the rule).

A samples file is ``{"match": [...], "nomatch": [...], "also_matches": [rule ids]}``: every
``match`` event must fire the rule (and no other rule unless listed), no ``nomatch`` event may
fire it. Used by ``sekimori rules test`` and the corpus test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detections.model import CompiledRule
from detections.ruleset import RuleSet


@dataclass(frozen=True, slots=True, kw_only=True)
class SampleReport:
    rule_id: str
    title: str
    source: Path
    checked: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def samples_path(rule: CompiledRule) -> Path:
    return rule.source.with_name(rule.source.stem + ".samples.json")


def _load(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict) or set(data) - {"match", "nomatch", "also_matches"}:
        raise ValueError("expected an object with 'match', 'nomatch' and optional 'also_matches'")
    return data


def check_rule_samples(ruleset: RuleSet, rule: CompiledRule) -> SampleReport:
    path = samples_path(rule)
    problems: list[str] = []
    checked = 0
    try:
        data = _load(path)
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: {exc}")
        data = {}
    allowed = {rule.rule_id, *data.get("also_matches", [])}
    if data and not data.get("match"):
        problems.append("needs at least one 'match' sample")
    if data and not data.get("nomatch"):
        problems.append("needs at least one 'nomatch' sample")
    for index, event in enumerate(data.get("match", [])):
        checked += 1
        fired = {m.rule_id for m in ruleset.match(event)}
        if rule.rule_id not in fired:
            problems.append(f"match[{index}] did not fire")
        for other in sorted(fired - allowed):
            problems.append(f"match[{index}] also fired {ruleset.get(other).title!r}")
    for index, event in enumerate(data.get("nomatch", [])):
        checked += 1
        if rule.rule_id in {m.rule_id for m in ruleset.match(event)}:
            problems.append(f"nomatch[{index}] fired")
    return SampleReport(
        rule_id=rule.rule_id,
        title=rule.title,
        source=rule.source,
        checked=checked,
        problems=tuple(problems),
    )


def check_samples(ruleset: RuleSet) -> list[SampleReport]:
    return [check_rule_samples(ruleset, rule) for rule in ruleset]
