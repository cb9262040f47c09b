"""Sigma detection for sekimori: load rules, compile them, match streaming events.

rules = load_rules([default_rules_dir()])
for match in rules.match(event):   # event: nested ECS dict with sekimori.kind
    ...
rules.errors    # every broken rule (RuleError with file, line, problem)
rules.skipped   # valid rules for logsources sekimori never produces, with the reason

Windows events (flat Sysmon/Security dicts, see detections.windows) route by channel+EventID.
Offline work: detections.scan.scan_files, detections.convert.convert_rules; correlations:
detections.correlation.CorrelationEngine; SigmaHQ regression replay: detections.conformance.
"""

from __future__ import annotations

from detections.correlation import CorrelationEngine, CorrelationMatch
from detections.correlation_spec import CorrelationSpec
from detections.loader import default_rules_dir, load_rules
from detections.logsources import LogsourceRoute, LogsourceRouter, Route
from detections.model import CompiledRule, Match, SkippedRule
from detections.pipeline import SIGMA_TO_ECS, sekimori_pipeline
from detections.ruleset import RuleSet

__all__ = [
    "SIGMA_TO_ECS",
    "CompiledRule",
    "CorrelationEngine",
    "CorrelationMatch",
    "CorrelationSpec",
    "LogsourceRoute",
    "LogsourceRouter",
    "Match",
    "Route",
    "RuleSet",
    "SkippedRule",
    "default_rules_dir",
    "load_rules",
    "sekimori_pipeline",
]
