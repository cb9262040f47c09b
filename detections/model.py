"""The detection engine's public records: what a rule is once compiled, and what a hit is.

Other packages (collector alerts, playbooks) depend on :class:`Match` field by field, so its
shape is a contract: add fields at the end with defaults, never rename or remove.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from agents.schema import get_path

Level = Literal["informational", "low", "medium", "high", "critical"]
LEVELS: Final[tuple[Level, ...]] = ("informational", "low", "medium", "high", "critical")
DEFAULT_LEVEL: Final[Level] = "medium"

# A compiled detection: takes a nested ECS event, answers "does the rule fire?".
EventPredicate = Callable[[Mapping[str, Any]], bool]


@dataclass(frozen=True, slots=True, kw_only=True)
class Match:
    """One rule firing on one event."""

    rule_id: str
    rule_title: str
    level: str
    tags: tuple[str, ...]
    description: str
    event_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CompiledRule:
    """A Sigma rule after field mapping and compilation, ready for streaming matching."""

    rule_id: str
    title: str
    level: Level
    tags: tuple[str, ...]
    description: str
    source: Path
    kinds: frozenset[str]  # the ``sekimori.kind`` values this rule is evaluated on
    logsource: tuple[str | None, str | None, str | None]  # (category, product, service)
    fields: tuple[str, ...]  # ECS fields the detection reads (after mapping)
    predicate: EventPredicate = field(repr=False, compare=False)
    # (lower-case channel or "*", EventID or None) for Windows rules; empty for our own kinds
    windows: frozenset[tuple[str, int | None]] = frozenset()
    condition: tuple[Any, ...] = field(default=(), repr=False)  # IR (detections.ir)
    name: str | None = None  # Sigma ``name`` (correlations may reference it)
    generate: bool = True  # False: only feeds correlations (referenced without generate)

    def matches(self, event: Mapping[str, Any]) -> bool:
        """Evaluate the detection only (no logsource routing)."""
        return self.predicate(event)

    def to_match(self, event: Mapping[str, Any]) -> Match:
        event_id = get_path(event, "event.id")
        return Match(
            rule_id=self.rule_id,
            rule_title=self.title,
            level=self.level,
            tags=self.tags,
            description=self.description,
            event_id=event_id if isinstance(event_id, str) else _windows_id(event),
        )

    def spec(self) -> dict[str, Any]:
        """Every field but the predicate: what the compiled-ruleset cache stores."""
        return {name: getattr(self, name) for name in _SPEC_FIELDS}


def _windows_id(event: Mapping[str, Any]) -> str | None:
    record = event.get("EventRecordID")
    if record is None:
        return None
    computer = event.get("Computer") or event.get("Hostname") or ""
    return f"{computer}:{event.get('Channel', '')}:{record}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedRule:
    """A valid rule the streaming engine will not evaluate, and why (e.g. Windows-only)."""

    rule_id: str | None
    title: str
    source: Path
    reason: Literal["unsupported_logsource", "correlation_rule", "unsupported_feature"]
    detail: str

    def __str__(self) -> str:
        return f"{self.source}: rule {self.title!r} skipped ({self.reason}): {self.detail}"


_SPEC_FIELDS: Final = tuple(
    name for name in CompiledRule.__dataclass_fields__ if name != "predicate"
)
