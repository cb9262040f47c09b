"""Correlation rules as plain, cacheable records (from pySigma's ``SigmaCorrelationRule``).

A correlation references rules (or other correlations) by id or ``name``; references are
resolved to ids here so the streaming engine (:mod:`detections.correlation`) only compares
strings. Field aliases become ``{alias: {referenced id: field}}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from sigma.correlations import SigmaCorrelationCondition, SigmaCorrelationRule

from agents.errors import RuleError
from detections.build import level_of
from detections.model import CompiledRule, Level

CorrelationType = Literal["event_count", "value_count", "temporal", "temporal_ordered"]
SUPPORTED: Final[frozenset[str]] = frozenset(
    {"event_count", "value_count", "temporal", "temporal_ordered"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrelationSpec:
    corr_id: str
    name: str | None
    title: str
    level: Level
    tags: tuple[str, ...]
    description: str
    source: Path
    type: CorrelationType
    rules: tuple[str, ...]  # referenced rule / correlation ids, in the rule's order
    group_by: tuple[str, ...]
    timespan: float  # seconds
    condition: tuple[tuple[str, int], ...]  # (op, count), all must hold; () for temporal
    field: str | None  # value_count: the field whose distinct values are counted
    aliases: Mapping[str, Mapping[str, str]]  # alias -> {referenced id: field}
    generate: bool

    def holds(self, count: int) -> bool:
        """Whether ``count`` satisfies the condition (temporal: every rule seen)."""
        if not self.condition:
            return count >= len(set(self.rules))
        return all(_OPS[op](count, limit) for op, limit in self.condition)


_OPS: Final = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
    "eq": lambda a, b: a == b,
    "neq": lambda a, b: a != b,
}


def correlation_spec(
    corr: SigmaCorrelationRule,
    path: Path,
    rules: Sequence[CompiledRule],
    correlations: Sequence[tuple[Path, str, SigmaCorrelationRule]],
) -> CorrelationSpec:
    """Resolve references and check what the streaming engine supports (RuleError if not)."""
    kind = str(corr.type.name).lower()
    if kind not in SUPPORTED:
        raise RuleError(f"correlation type {kind!r} is not supported by the streaming engine")
    if corr.id is None:
        raise RuleError("correlation rule has no id", remedy="add `id: <uuid4>`")
    names: dict[str, str] = {}
    for rule in rules:
        names[rule.rule_id] = rule.rule_id
        if rule.name:
            names[rule.name] = rule.rule_id
    for _, _, other in correlations:
        if other.id is not None:
            names[str(other.id)] = str(other.id)
            if other.name:
                names[other.name] = str(other.id)
    refs = [ref.reference for ref in corr.rules or []]
    missing = [ref for ref in refs if ref not in names]
    if missing:
        raise RuleError(f"references unknown or not loaded rules: {', '.join(missing)}")
    condition: tuple[tuple[str, int], ...] = ()
    field: str | None = None
    if isinstance(corr.condition, SigmaCorrelationCondition):
        condition = ((corr.condition.op.name.lower(), int(corr.condition.count)),)
        fieldref = corr.condition.fieldref
        field = fieldref[0] if isinstance(fieldref, list) else fieldref
    elif corr.condition is not None and kind not in ("temporal", "temporal_ordered"):
        raise RuleError("extended correlation conditions are not supported")
    aliases = {
        alias.alias: {
            names.get(ref.reference, ref.reference): f for ref, f in alias.mapping.items()
        }
        for alias in corr.aliases.aliases.values()
    }
    return CorrelationSpec(
        corr_id=str(corr.id),
        name=corr.name,
        title=corr.title,
        level=level_of(corr),
        tags=tuple(str(tag) for tag in corr.tags),
        description=(corr.description or "").strip(),
        source=path,
        type=kind,  # type: ignore[arg-type]
        rules=tuple(names[ref] for ref in refs),
        group_by=tuple(corr.group_by or ()),
        timespan=float(corr.timespan.seconds),
        condition=condition,
        field=field,
        aliases=aliases,
        generate=bool(corr.generate),
    )
