"""RuleSet: compiled rules indexed for fast routing, plus everything that did not load.

Routing first: our own events route on ``sekimori.kind``; Windows events (flat Sysmon/Security
dicts, see :mod:`detections.windows`) route on (channel, EventID), so an event is only tested
against rules whose logsource can produce it. Within a Windows bucket, the anchor prefilter
(:mod:`detections.anchors`, :mod:`detections.prefilter`; hyperscan over the event's JSON line
when the caller passes it, :mod:`detections.rawscan`) picks the few candidate rules, and each
candidate runs its generated predicate (:mod:`detections.codegen`, made on first use).
:meth:`RuleSet.fired_reference` is the slow reference path (every routed rule's closure
predicate) the tests compare against. Rules are kept in load order, so matches come out
deterministically.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from agents.errors import NotFoundError, RuleError
from agents.schema import FIELD_TYPES
from detections.anchors import rule_anchors
from detections.codegen import flat_view, generate, has_keywords
from detections.correlation_spec import CorrelationSpec
from detections.ir import fields_of
from detections.model import CompiledRule, EventPredicate, Match, SkippedRule
from detections.prefilter import AnchorIndex
from detections.windows import ANY_CHANNEL, event_key, with_aliases

# Buckets with fewer rules are evaluated without the prefilter, unless a rule searches keywords
# (every value of the event: the prefilter's screen is much cheaper than the search).
PREFILTER_MIN_RULES: Final = 12

# (rules in load order, their anchor index or None, their generated predicates)
_Bucket = tuple[tuple[CompiledRule, ...], AnchorIndex | None, list[EventPredicate]]
# our own kinds: (rules in load order, their predicates, True where the predicate must see the
# event itself rather than its flat view: keyword rules, whose reference predicate is used;
# True when the generated predicates may read a validated event's leaves instead of the flat
# view: no rule of the bucket names an interior path of the event contract)
_KindBucket = tuple[tuple[CompiledRule, ...], tuple[EventPredicate, ...], tuple[bool, ...], bool]
# Paths that are objects, never leaves, in an event that passed the contract
# (``agents.schema.FIELD_TYPES`` lists leaf paths only, and no leaf path is the prefix of
# another). A rule naming one ("process.parent") reads the object: it needs the flat view.
_INTERIOR_PATHS: Final = frozenset(
    path.rsplit(".", depth)[0] for path in FIELD_TYPES for depth in range(1, path.count(".") + 1)
)


class RuleSet:
    """The streaming engine's view of a rule corpus.

    ``rules``: compiled rules in load order. ``errors``: one :class:`RuleError` per broken rule
    or file (file and, where known, line). ``skipped``: valid rules the engine does not evaluate
    (unsupported logsource or feature), each with its reason. ``correlations``: correlation
    rules (evaluated by :class:`detections.correlation.CorrelationEngine`).
    """

    __slots__ = (
        "_buckets",
        "_by_id",
        "_by_kind",
        "_by_wkey",
        "_generated",
        "_kind_buckets",
        "_silent",
        "correlations",
        "errors",
        "rules",
        "skipped",
    )

    def __init__(
        self,
        rules: Sequence[CompiledRule] = (),
        errors: Sequence[RuleError] = (),
        skipped: Sequence[SkippedRule] = (),
        *,
        correlations: Sequence[CorrelationSpec] = (),
    ) -> None:
        self.rules: list[CompiledRule] = list(rules)
        self.errors: list[RuleError] = list(errors)
        self.skipped: list[SkippedRule] = list(skipped)
        self.correlations: list[CorrelationSpec] = list(correlations)
        by_kind: dict[str, list[CompiledRule]] = {}
        by_wkey: dict[tuple[str, int | None], list[int]] = {}
        for index, rule in enumerate(self.rules):
            for kind in rule.kinds:
                by_kind.setdefault(kind, []).append(rule)
            for key in rule.windows:
                by_wkey.setdefault(key, []).append(index)
        self._by_kind: dict[str, tuple[CompiledRule, ...]] = {
            kind: tuple(rules) for kind, rules in by_kind.items()
        }
        self._by_wkey = by_wkey
        self._buckets: dict[tuple[str, int], _Bucket] = {}
        self._kind_buckets: dict[str, _KindBucket] = {}
        self._generated: dict[int, EventPredicate] = {}
        self._by_id: dict[str, CompiledRule] = {rule.rule_id: rule for rule in self.rules}
        self._silent: frozenset[str] = frozenset(
            ref for corr in self.correlations if not corr.generate for ref in corr.rules
        )

    def match(
        self, event: Mapping[str, Any], leaves: Mapping[str, Any] | None = None
    ) -> list[Match]:
        """Every rule that fires on ``event`` and generates matches of its own (rules used only
        by a correlation without ``generate: true`` stay silent).

        ``leaves``: for an event that passed the agent event contract (``agents.schema``:
        nested dicts, no dotted keys, only ``FIELD_TYPES`` leaves), every dotted leaf path
        -> its value (``collector.validate.ParsedBatch.leaves``, enrichment included). It
        saves building the flat view; the answer is the same."""
        silent = self._silent
        if leaves is not None and (kind := _kind_of(event)) is not None:
            fired = self._fired_kind(kind, event, leaves)
        else:
            fired = self.fired(event)
        return [rule.to_match(event) for rule in fired if rule.rule_id not in silent]

    def fired(self, event: Mapping[str, Any], raw: bytes | None = None) -> list[CompiledRule]:
        """Every rule whose detection matches ``event`` (silent ones included), in load order.

        ``raw``: optionally the JSON text ``event`` was parsed from (one JSON line, the event
        being ``flatten_record(orjson.loads(raw))``); it lets the prefilter screen keywords on
        the bytes. Same answer with or without it, and the same as :meth:`fired_reference`."""
        kind = _kind_of(event)
        if kind is not None:
            return self._fired_kind(kind, event)
        key = event_key(event)
        if key is None:
            return []
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = self._bucket(key)
        rules, index, predicates = bucket
        if not rules:
            return []
        view = with_aliases(event, key) if isinstance(event, dict) else dict(event)
        if index is None:
            return [
                rule for rule, predicate in zip(rules, predicates, strict=True) if predicate(view)
            ]
        return [rules[i] for i in index.candidates(view, raw) if predicates[i](view)]

    def _fired_kind(
        self, kind: str, event: Mapping[str, Any], leaves: Mapping[str, Any] | None = None
    ) -> list[CompiledRule]:
        """Our own (nested ECS) events: generated predicates over the event's flat view (or
        its contract leaves, which answer the same for every path a leaf-safe bucket reads)."""
        bucket = self._kind_buckets.get(kind)
        if bucket is None:
            bucket = self._kind_buckets[kind] = self._kind_bucket(kind)
        rules, predicates, keywords, leaf_safe = bucket
        if not rules:
            return []
        view = leaves if leaves is not None and leaf_safe else flat_view(event)
        if view is None:  # a dotted key or an exotic mapping: the reference path
            return [rule for rule in rules if rule.predicate(event)]
        return [
            rule
            for rule, predicate, kw in zip(rules, predicates, keywords, strict=True)
            if predicate(event if kw else view)
        ]

    def _kind_bucket(self, kind: str) -> _KindBucket:
        rules = self._by_kind.get(kind, ())
        keywords = tuple(has_keywords(rule.condition) for rule in rules)
        predicates = tuple(
            rule.predicate if kw else generate(rule.condition, dotted=True)
            for rule, kw in zip(rules, keywords, strict=True)
        )
        named: set[str] = set()
        for rule, kw in zip(rules, keywords, strict=True):
            if not kw:
                fields_of(rule.condition, named)
        return rules, predicates, keywords, not (named & _INTERIOR_PATHS)

    def fired_reference(self, event: Mapping[str, Any]) -> list[CompiledRule]:
        """What :meth:`fired` answers, the slow way: every routed rule's reference predicate
        (closures from :mod:`detections.compiler`), no prefilter, no generated code."""
        kind = _kind_of(event)
        if kind is not None:
            return [rule for rule in self._by_kind.get(kind, ()) if rule.predicate(event)]
        key = event_key(event)
        if key is None:
            return []
        view = with_aliases(event, key) if isinstance(event, dict) else dict(event)
        return [rule for rule in self._bucket(key)[0] if rule.predicate(view)]

    def candidates(self, event: Mapping[str, Any]) -> tuple[CompiledRule, ...]:
        """The rules routed to this event (before the anchor prefilter)."""
        kind = _kind_of(event)
        if kind is not None:
            return self._by_kind.get(kind, ())
        key = event_key(event)
        return () if key is None else self._bucket(key)[0]

    def _bucket(self, key: tuple[str, int]) -> _Bucket:
        channel, eid = key
        indices: set[int] = set()
        for wkey in ((channel, eid), (channel, None), (ANY_CHANNEL, None)):
            indices.update(self._by_wkey.get(wkey, ()))
        chosen = [i for i in sorted(indices) if _may_have_event_id(self.rules[i].condition, eid)]
        rules = tuple(self.rules[i] for i in chosen)
        predicates: list[EventPredicate] = []
        for position, index in enumerate(chosen):
            ready = self._generated.get(index)
            predicates.append(ready or _Pending(self._generated, self.rules[index], index,
                                                predicates, position))  # fmt: skip
        anchors = [rule_anchors(rule.condition) for rule in rules]
        keywords = any(field is None for found in anchors for _, field, _ in found or ())
        if len(rules) < PREFILTER_MIN_RULES and not keywords:
            return rules, None, predicates
        return rules, AnchorIndex(anchors), predicates

    @property
    def silent(self) -> frozenset[str]:
        """Ids of rules referenced by a correlation without ``generate: true``."""
        return self._silent

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
            f"skipped={len(self.skipped)}, correlations={len(self.correlations)})"
        )


class _Pending:
    """A rule's generated predicate, made on first call (most rules of a big bucket are never
    candidates), then put in the bucket's slot so later calls go straight to it."""

    __slots__ = ("_generated", "_index", "_position", "_predicates", "_rule")

    def __init__(
        self,
        generated: dict[int, EventPredicate],
        rule: CompiledRule,
        index: int,
        predicates: list[EventPredicate],
        position: int,
    ) -> None:
        self._generated, self._rule, self._index = generated, rule, index
        self._predicates, self._position = predicates, position

    def __call__(self, event: Mapping[str, Any]) -> bool:
        predicate = self._generated.get(self._index)
        if predicate is None:
            predicate = self._generated[self._index] = generate(self._rule.condition)
        self._predicates[self._position] = predicate
        return predicate(event)


def _kind_of(event: Mapping[str, Any]) -> str | None:
    sekimori = event.get("sekimori")
    if sekimori is None:  # Windows events: skip the (slow) ABC isinstance check
        kind = event.get("sekimori.kind")
    else:
        kind = sekimori.get("kind") if isinstance(sekimori, Mapping) else event.get("sekimori.kind")
    return kind if isinstance(kind, str) else None


def _may_have_event_id(node: tuple[Any, ...], eid: int) -> bool:
    """False when the condition requires ``EventID`` to be some other number (refines routing
    for service-wide rules such as ``service: sysmon`` + ``EventID: 16``)."""
    required = _required_event_ids(node)
    return required is None or eid in required


def _required_event_ids(node: tuple[Any, ...]) -> frozenset[float] | None:
    kind = node[0] if node else None
    if kind == "field" and node[1] == "EventID":
        test = node[2]
        if test[0] == "num":
            return frozenset({test[1]})
        if test[0] == "any" and all(t[0] == "num" for t in test[1]):
            return frozenset(t[1] for t in test[1])
        return None
    if kind == "and":
        for child in node[1]:
            found = _required_event_ids(child)
            if found is not None:
                return found
        return None
    if kind == "or":
        union: set[float] = set()
        for child in node[1]:
            found = _required_event_ids(child)
            if found is None:
                return None
            union |= found
        return frozenset(union)
    return None
