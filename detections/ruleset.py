"""RuleSet: compiled rules indexed by event kind, plus everything that did not load.

Matching routes on ``sekimori.kind`` first, so an event is only tested against the rules whose
logsource can apply to it; rules are kept in load order so matches come out deterministically.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from agents.errors import NotFoundError, RuleError
from detections.model import CompiledRule, Match, SkippedRule


class RuleSet:
    """The streaming engine's view of a rule corpus.

    ``rules``: compiled rules in load order. ``errors``: one :class:`RuleError` per broken rule
    or file (file and, where known, line). ``skipped``: valid rules the engine does not evaluate
    (unsupported logsource, correlation rules), each with its reason.
    """

    __slots__ = ("_by_id", "_by_kind", "errors", "rules", "skipped")

    def __init__(
        self,
        rules: Sequence[CompiledRule] = (),
        errors: Sequence[RuleError] = (),
        skipped: Sequence[SkippedRule] = (),
    ) -> None:
        self.rules: list[CompiledRule] = list(rules)
        self.errors: list[RuleError] = list(errors)
        self.skipped: list[SkippedRule] = list(skipped)
        by_kind: dict[str, list[CompiledRule]] = {}
        for rule in self.rules:
            for kind in rule.kinds:
                by_kind.setdefault(kind, []).append(rule)
        self._by_kind: dict[str, tuple[CompiledRule, ...]] = {
            kind: tuple(rules) for kind, rules in by_kind.items()
        }
        self._by_id: dict[str, CompiledRule] = {rule.rule_id: rule for rule in self.rules}

    def match(self, event: Mapping[str, Any]) -> list[Match]:
        """Every rule that fires on ``event`` (a nested ECS dict carrying ``sekimori.kind``)."""
        return [rule.to_match(event) for rule in self.candidates(event) if rule.predicate(event)]

    def candidates(self, event: Mapping[str, Any]) -> tuple[CompiledRule, ...]:
        """The rules routed to this event's kind."""
        kind = _kind_of(event)
        if kind is None:
            return ()
        return self._by_kind.get(kind, ())

    def get(self, rule_id: str) -> CompiledRule:
        try:
            return self._by_id[rule_id]
        except KeyError:
            raise NotFoundError(
                f"no loaded rule with id {rule_id}",
                remedy="list the loaded rules, or check the rule file loaded without errors",
            ) from None

    def __len__(self) -> int:
        return len(self.rules)

    def __iter__(self) -> Iterator[CompiledRule]:
        return iter(self.rules)

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._by_id

    def __repr__(self) -> str:
        return (
            f"RuleSet(rules={len(self.rules)}, errors={len(self.errors)}, "
            f"skipped={len(self.skipped)})"
        )


def _kind_of(event: Mapping[str, Any]) -> str | None:
    sekimori = event.get("sekimori")
    kind = sekimori.get("kind") if isinstance(sekimori, Mapping) else event.get("sekimori.kind")
    return kind if isinstance(kind, str) else None
