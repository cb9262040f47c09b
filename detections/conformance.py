"""SigmaHQ regression data: replay each case's event samples and compare match counts.

``regression_data/**/info.yml`` names one rule (``rule_metadata[].id``) and its tests
(``regression_tests_info[]``: an EVTX path relative to the corpus root and the expected
``match_count``). Each EVTX file has a JSON twin (``evtx_dump`` output) next to it; both are
replayed through the full routing of a one-rule :class:`RuleSet`, so a case also proves that
the rule's logsource routes to the sample's channel/EventID. A test without ``match_count`` is
SigmaHQ's "positive detection test": at least one match. A case without tests (commented out in
info.yml) is reported as such, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from detections.readers import iter_events
from detections.ruleset import RuleSet


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseResult:
    case: str  # info.yml folder, relative to regression_data
    rule_id: str
    sample: str  # file name replayed ("" when the case defines no test)
    expected: int | None  # None: at least one
    actual: int
    problem: str | None  # why the case fails or cannot run; None when it passes

    @property
    def ok(self) -> bool:
        return self.problem is None


def regression_cases(sigma_root: Path) -> list[Path]:
    return sorted((sigma_root / "regression_data").rglob("info.yml"))


def run_case(info: Path, sigma_root: Path, ruleset: RuleSet) -> Iterator[CaseResult]:
    """Replay one case against ``ruleset`` (which must contain the case's rule)."""
    data: dict[str, Any] = yaml.safe_load(info.read_text(encoding="utf-8")) or {}
    case = str(info.parent.relative_to(sigma_root / "regression_data"))
    rule_id = str((data.get("rule_metadata") or [{}])[0].get("id", ""))
    tests = [t for t in data.get("regression_tests_info") or [] if isinstance(t, dict)]
    if not tests:
        yield CaseResult(
            case=case, rule_id=rule_id, sample="", expected=None, actual=0,
            problem="no regression_tests_info in info.yml (case disabled upstream)",
        )  # fmt: skip
        return
    if rule_id not in ruleset:
        reason = next(
            (f"{s.reason}: {s.detail}" for s in ruleset.skipped if s.rule_id == rule_id),
            "rule not loaded",
        )
        yield CaseResult(
            case=case, rule_id=rule_id, sample="", expected=None, actual=0, problem=reason
        )
        return
    single = RuleSet([ruleset.get(rule_id)])
    for test in tests:
        expected = test.get("match_count")
        evtx = sigma_root / str(test.get("path", ""))
        for sample in (evtx, evtx.with_suffix(".json")):
            if not sample.is_file():
                if sample == evtx:
                    yield CaseResult(
                        case=case, rule_id=rule_id, sample=sample.name, expected=expected,
                        actual=0, problem="sample file missing",
                    )  # fmt: skip
                continue
            actual = sum(1 for event in iter_events(sample) if single.fired(event))
            good = actual == expected if expected is not None else actual >= 1
            yield CaseResult(
                case=case, rule_id=rule_id, sample=sample.name, expected=expected,
                actual=actual,
                problem=None if good else f"expected {expected or '>= 1'} matches, got {actual}",
            )  # fmt: skip
