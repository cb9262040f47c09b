"""Run each rule's sample events (``<rule>.samples.json`` next to the rule).

A samples file is ``{"match": [...], "nomatch": [...], "also_matches": [rule ids]}``: every
``match`` event must fire the rule (and no other rule unless listed), no ``nomatch`` event may
fire it. A rule that only feeds correlations (silent) must still fire on its ``match`` events.
A correlation rule's samples file (next to the file that holds it) is read as two sequences:
the ``match`` events, fed in order to the correlation engine, must fire the correlation; the
``nomatch`` events, fed in order, must not. Used by ``sekimori rules test`` and the corpus test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detections.correlation import CorrelationEngine
from detections.correlation_spec import CorrelationSpec
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


def _read(path: Path, problems: list[str]) -> dict[str, Any]:
    """The samples file, or ``{}`` with the reason appended to ``problems``."""
    try:
        return _load(path)
    except (OSError, ValueError) as exc:
        problems.append(f"{path.name}: {exc}")
        return {}


def check_rule_samples(ruleset: RuleSet, rule: CompiledRule) -> SampleReport:
    problems: list[str] = []
    checked = 0
    data = _read(samples_path(rule), problems)
    allowed = {rule.rule_id, *data.get("also_matches", [])}
    if data and not data.get("match"):
        problems.append("needs at least one 'match' sample")
    if data and not data.get("nomatch"):
        problems.append("needs at least one 'nomatch' sample")
    silent = rule.rule_id in ruleset.silent
    for index, event in enumerate(data.get("match", [])):
        checked += 1
        fired = {m.rule_id for m in ruleset.match(event)}
        if silent and rule in ruleset.fired(event):
            fired.add(rule.rule_id)
        if rule.rule_id not in fired:
            problems.append(f"match[{index}] did not fire")
        for other in sorted(fired - allowed):
            problems.append(f"match[{index}] also fired {ruleset.get(other).title!r}")
    for index, event in enumerate(data.get("nomatch", [])):
        checked += 1
        if rule in ruleset.fired(event):
            problems.append(f"nomatch[{index}] fired")
    return SampleReport(
        rule_id=rule.rule_id,
        title=rule.title,
        source=rule.source,
        checked=checked,
        problems=tuple(problems),
    )


def check_correlation_samples(ruleset: RuleSet, spec: CorrelationSpec) -> SampleReport:
    problems: list[str] = []
    checked = 0
    data = _read(spec.source.with_name(spec.source.stem + ".samples.json"), problems)
    for key, should_fire in (("match", True), ("nomatch", False)):
        events = data.get(key, [])
        if data and not events:
            problems.append(f"needs at least one {key!r} sample")
        if not events:
            continue
        checked += len(events)
        engine = CorrelationEngine(ruleset)
        hits = {m.corr_id for event in events for m in engine.process(event)}
        hits |= {m.corr_id for m in engine.flush()}
        if should_fire and spec.corr_id not in hits:
            problems.append("the 'match' events, fed in order, did not fire it")
        if not should_fire and spec.corr_id in hits:
            problems.append("the 'nomatch' events, fed in order, fired it")
    return SampleReport(
        rule_id=spec.corr_id,
        title=spec.title,
        source=spec.source,
        checked=checked,
        problems=tuple(problems),
    )


def check_samples(ruleset: RuleSet) -> list[SampleReport]:
    reports = [check_rule_samples(ruleset, rule) for rule in ruleset]
    reports += [check_correlation_samples(ruleset, spec) for spec in ruleset.correlations]
    return reports
