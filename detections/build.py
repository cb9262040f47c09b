"""Turn one parsed pySigma rule into a :class:`CompiledRule` (route, pipeline, IR, predicate).

Kept apart from file handling (:mod:`detections.loader`) so the compiled-ruleset cache can
rebuild rules from their specs (:func:`from_spec`) without pySigma.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from sigma.exceptions import SigmaError
from sigma.processing.pipeline import ProcessingPipeline
from sigma.rule import SigmaRule

from agents.errors import RuleError
from detections.compiler import compile_node
from detections.ir import Node, fields_of, lower_condition
from detections.logsources import Route
from detections.model import DEFAULT_LEVEL, LEVELS, CompiledRule, Level, SkippedRule
from detections.pipeline import Placeholders, sekimori_pipeline, windows_pipeline

# Errors a rule can raise while being processed or compiled (SigmaError is a ValueError).
COMPILE_ERRORS: Final = (SigmaError, RuleError, ValueError, TypeError, re.error)


class Unsupported(Exception):  # noqa: N818 - a verdict, not an error
    """A valid rule using something the streaming engine cannot evaluate."""


def pipeline_for(route: Route, placeholders: Placeholders | None) -> ProcessingPipeline:
    return windows_pipeline(placeholders) if route.windows else sekimori_pipeline(placeholders)


def compile_sigma_rule(
    rule: SigmaRule, route: Route, path: Path, placeholders: Placeholders | None
) -> CompiledRule:
    """Apply the pipeline, lower every condition to IR, compile. Raises COMPILE_ERRORS or
    :class:`Unsupported`."""
    pipeline_for(route, placeholders).apply(rule)
    nodes: list[Node] = []
    for parsed in rule.detection.parsed_condition:
        try:
            nodes.append(lower_condition(parsed.parse()))
        except RuleError as exc:
            if "placeholder" in exc.message:
                raise Unsupported(exc.message) from None
            raise
    condition: Node = nodes[0] if len(nodes) == 1 else ("or", tuple(nodes))
    return from_spec(
        {
            "rule_id": str(rule.id),
            "title": rule.title,
            "level": level_of(rule),
            "tags": tuple(str(tag) for tag in rule.tags),
            "description": (rule.description or "").strip(),
            "source": path,
            "kinds": route.kinds,
            "logsource": (rule.logsource.category, rule.logsource.product, rule.logsource.service),
            "fields": tuple(sorted(fields_of(condition, set()))),
            "windows": route.windows,
            "condition": condition,
            "name": rule.name,
            "generate": True,
        }
    )


def from_spec(spec: Mapping[str, Any], *, lazy: bool = False) -> CompiledRule:
    """A rule from its cached spec; ``lazy`` defers compiling the predicate to first use."""
    if not lazy:
        return CompiledRule(**spec, predicate=compile_node(spec["condition"]))
    holder = _LazyPredicate(spec["condition"])
    rule = CompiledRule(**spec, predicate=holder)
    holder.rule = rule
    return rule


class _LazyPredicate:
    """Compiles on first call, then puts the real predicate on the rule (so later calls skip
    this indirection). Keeps a cached 3,000-rule corpus loading in a fraction of a second."""

    __slots__ = ("condition", "rule")

    def __init__(self, condition: Node) -> None:
        self.condition = condition
        self.rule: CompiledRule | None = None

    def __call__(self, event: Mapping[str, Any]) -> bool:
        predicate = compile_node(self.condition)
        if self.rule is not None:
            object.__setattr__(self.rule, "predicate", predicate)  # frozen dataclass
        return predicate(event)


def skipped(rule: SigmaRule, path: Path, reason: str, detail: str) -> SkippedRule:
    return SkippedRule(
        rule_id=str(rule.id) if rule.id else None,
        title=rule.title,
        source=path,
        reason=reason,  # type: ignore[arg-type]
        detail=detail,
    )


def level_of(rule: Any) -> Level:
    if rule.level is None:
        return DEFAULT_LEVEL
    name = rule.level.name.lower()
    for level in LEVELS:
        if level == name:
            return level
    return DEFAULT_LEVEL


def problem(exc: BaseException) -> str:
    if isinstance(exc, RuleError):
        return exc.message
    detail = str(exc.args[0]) if exc.args else type(exc).__name__
    return f"{detail} ({type(exc).__name__})"
