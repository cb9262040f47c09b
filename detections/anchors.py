"""Literal anchors: lower-case strings of which a matching event must contain at least one.

For every rule the engine derives, from its IR condition, a set of literals such that "the rule
matches" implies "some literal of the set occurs in some field value of the event". An
Aho–Corasick automaton over all rules' anchors, run once per event over the lower-cased field
values, then yields the few candidate rules worth evaluating; rules without anchors (pure
negations, numbers, ``|exists``) are always candidates. The prefilter only ever removes rules
that cannot match, so it changes speed, never results.

Rules of derivation: a string test anchors on its longest literal; OR needs every branch
anchored (union); AND picks its best-anchored branch; NOT, numbers, CIDR, field references and
``|exists`` have no anchor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, Final

import ahocorasick

from detections.compiler import make_getter
from detections.ir import Node, Test

MIN_LENGTH: Final = 3
SEPARATOR: Final = "\x00"

# (field the literal must occur in, or None for "any field"; the literal)
Anchor = tuple[str | None, str]
Anchors = frozenset[Anchor] | None


def rule_anchors(node: Node) -> Anchors:
    kind = node[0]
    if kind == "and":
        options = [(child, a) for child in node[1] if (a := rule_anchors(child))]
        return max(options, key=_quality)[1] if options else None
    if kind == "or":
        union: set[Anchor] = set()
        for child in node[1]:
            anchors = rule_anchors(child)
            if not anchors:
                return None
            union |= anchors
        return frozenset(union)
    if kind in ("field", "kw"):
        needles = test_anchors(node[-1])
        field: str | None = node[1] if kind == "field" else None
        return frozenset((field, needle) for needle in needles) if needles else None
    return None


def test_anchors(test: Test) -> frozenset[str] | None:
    op = test[0]
    if op in ("eq", "sw", "ew", "ct"):
        return _one(test[1])
    if op == "set":
        return _many(test[1])
    if op == "glob":
        return _one(max(test[3], key=len)) if test[3] else None
    if op == "re":
        return _many(test[3]) if test[3] else None
    if op == "any":
        union: set[str] = set()
        for sub in test[1]:
            found = test_anchors(sub)
            if not found:
                return None
            union |= found
        return frozenset(union)
    return None


def _one(literal: str) -> frozenset[str] | None:
    literal = literal.lower()
    return frozenset({literal}) if len(literal) >= MIN_LENGTH else None


def _many(literals: Iterable[str]) -> frozenset[str] | None:
    found: set[str] = set()
    for literal in literals:
        one = _one(literal)
        if one is None:
            return None
        found |= one
    return frozenset(found)


_COMMON_PREFIXES: Final = ("c:\\windows\\", "c:\\program files", "\\windows\\")


def _quality(option: tuple[Node, frozenset[Anchor]]) -> tuple[int, int, int]:
    """Prefer exact-value tests (selective), avoid ubiquitous path prefixes, then length."""
    child, anchors = option
    exact = int(child[0] == "field" and child[2][0] in ("eq", "set"))
    common = int(any(a.startswith(_COMMON_PREFIXES) for _, a in anchors))
    return (exact - common, min(len(a) for _, a in anchors), -len(anchors))


def haystack(event: Mapping[str, Any]) -> str:
    """Every scalar of a flat event, lower-cased, NUL-separated (nested values walked)."""
    parts: list[str] = []
    for value in event.values():
        if type(value) is str:
            parts.append(value)
        elif isinstance(value, Mapping | list):
            _walk(value, parts)
        elif value is not None:
            parts.append(str(value))
    return SEPARATOR.join(parts).lower()


def _walk(node: Any, parts: list[str]) -> None:
    items = node.values() if isinstance(node, Mapping) else node
    for value in items:
        if isinstance(value, Mapping | list):
            _walk(value, parts)
        elif value is not None:
            parts.append(value if type(value) is str else str(value))


def field_text(event: Mapping[str, Any], get: Callable[[Mapping[str, Any]], Any]) -> str:
    value = get(event)
    if value is None:
        return ""
    if type(value) is str:
        return value.lower()
    if isinstance(value, Mapping | list):
        parts: list[str] = []
        _walk(value, parts)
        return SEPARATOR.join(parts).lower()
    return str(value).lower()


class AnchorIndex:
    """Candidate selection for one routing bucket of rules (indices into its rule list).

    One automaton per anchored field (a literal anchored on ``Image`` is only searched in
    ``Image``), plus one over every value for keyword anchors."""

    __slots__ = ("_always", "_automata")

    def __init__(self, anchors: Sequence[Anchors]) -> None:
        self._always = frozenset(i for i, a in enumerate(anchors) if not a)
        by_field: dict[str | None, dict[str, set[int]]] = {}
        for index, found in enumerate(anchors):
            for field, needle in found or ():
                by_field.setdefault(field, {}).setdefault(needle, set()).add(index)
        self._automata: list[tuple[Callable[[Mapping[str, Any]], str], Any]] = []
        for field, needles in sorted(by_field.items(), key=lambda item: item[0] or ""):
            automaton = ahocorasick.Automaton()
            for needle, rules in needles.items():
                automaton.add_word(needle, frozenset(rules))
            automaton.make_automaton()
            text: Callable[[Mapping[str, Any]], str] = (
                haystack if field is None else partial(field_text, get=make_getter(field))
            )
            self._automata.append((text, automaton))

    def candidates(self, event: Mapping[str, Any]) -> list[int]:
        """Sorted rule indices that may match ``event``."""
        found = set(self._always)
        for text_of, automaton in self._automata:
            text = text_of(event)
            if text:
                for rules in {rules for _, rules in automaton.iter(text)}:
                    found |= rules
        return sorted(found)
