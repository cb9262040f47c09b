"""Candidate selection for one routing bucket: the rules whose anchors hold for an event.

Built from the anchors of every rule of a bucket (:mod:`detections.anchors`), checked once per
event, cheapest first:

1. per field, one hash lookup of the lower-cased value (``eq`` anchors) and one of its last
   backslash segment (``tail`` anchors: ``Image|endswith: '\\rundll32.exe'``);
2. substring anchors: when the caller passes the JSON line the event was parsed from and
   hyperscan is installed, one hyperscan pass over the line for every substring anchor of the
   bucket (:mod:`detections.rawscan`); otherwise, per field, an Aho–Corasick automaton over the
   lower-cased value, and for keyword anchors (a literal anywhere in the event, e.g. the
   Mimikatz keyword rule routed to every Windows event) a *screen* first: a handful of short
   grams such that every keyword contains one (``::``, ``kiwi`` …), searched with ``in``; only
   if one occurs, the automaton over every value.

Every step only ever drops rules that cannot match: the answer is the same as evaluating every
rule of the bucket (``tests/detections/test_detection_fastpath.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import ahocorasick

from detections import rawscan
from detections.anchors import Anchors
from detections.compiler import Getter, joined_text, make_getter
from detections.values import as_text

SEPARATOR: Final = "\x00"
GRAM_LENGTHS: Final = (4, 3, 2)

_Table = dict[str, frozenset[int]]


class KeywordScan:
    """Keyword anchors of one bucket: screen grams, then the exact automaton."""

    __slots__ = ("_automaton", "_grams")

    def __init__(self, needles: Mapping[str, set[int]]) -> None:
        self._automaton = _automaton(needles)
        self._grams = screen_grams(needles)

    def hits(self, event: Mapping[str, Any], found: set[int]) -> None:
        text = joined_text(event)  # the text keyword predicates search too (cached per event)
        if not any(gram in text for gram in self._grams):
            return
        for _, rules in self._automaton.iter(text):
            found |= rules


class AnchorIndex:
    """Candidate rules (indices into the bucket's rule list) for an event."""

    __slots__ = ("_always", "_hashed", "_pure", "_raw", "_tables")

    def __init__(self, anchors: Sequence[Anchors]) -> None:
        self._always = frozenset(i for i, a in enumerate(anchors) if not a)
        tables: dict[tuple[str, str | None], dict[str, set[int]]] = {}
        for index, found in enumerate(anchors):
            for kind, field, literal in found or ():
                tables.setdefault((kind, field), {}).setdefault(literal, set()).add(index)
        hashed = sorted({field for kind, field in tables if kind != "sub" and field})
        self._hashed: list[tuple[str, Getter | None, _Table, _Table]] = [
            (
                f,
                make_getter(f) if "." in f else None,  # plain names: one dict.get
                _frozen(tables.get(("eq", f))),
                _frozen(tables.get(("tail", f))),
            )
            for f in hashed
        ]
        self._tables = tables
        self._pure: tuple[list[tuple[Getter, Any]], KeywordScan | None] | None = None
        subs: dict[str, set[int]] = {}
        for (anchor_kind, _), needles in tables.items():
            for needle, rules in needles.items() if anchor_kind == "sub" else ():
                subs.setdefault(needle, set()).update(rules)
        self._raw = rawscan.scanner(subs) if subs else None

    def candidates(self, event: Mapping[str, Any], raw: bytes | None = None) -> list[int]:
        """Sorted rule indices that may match ``event`` (``raw``: its JSON line, optional)."""
        found = set(self._always)
        for name, get, exact, tails in self._hashed:
            value = event.get(name) if get is None else get(event)
            if value is None:
                continue
            if type(value) is str:
                _lookup(value.lower(), exact, tails, found)
            elif type(value) is list:
                for item in value:
                    text = as_text(item)
                    if text is not None:
                        _lookup(text.lower(), exact, tails, found)
            else:
                text = as_text(value)
                if text is not None:
                    _lookup(text.lower(), exact, tails, found)
        if raw is not None and self._raw is not None and self._raw.scan(raw, found):
            return sorted(found)
        automata, keywords = self._pure or self._build_pure()
        for get, automaton in automata:
            text = field_text(get(event))
            if text:
                for _, rules in automaton.iter(text):
                    found |= rules
        if keywords is not None:
            keywords.hits(event, found)
        return sorted(found)

    def _build_pure(self) -> tuple[list[tuple[Getter, Any]], KeywordScan | None]:
        """The pure-Python substring prefilter, built when first needed (no raw line, a line
        that is not verbatim, or no hyperscan)."""
        automata = [
            (make_getter(field), _automaton(needles))
            for (kind, field), needles in sorted(self._tables.items(), key=str)
            if kind == "sub" and field is not None
        ]
        keywords = self._tables.get(("sub", None))
        self._pure = (automata, KeywordScan(keywords) if keywords else None)
        return self._pure


def _lookup(text: str, exact: _Table, tails: _Table, found: set[int]) -> None:
    if exact:
        rules = exact.get(text)
        if rules is not None:
            found |= rules
    if tails:
        cut = text.rfind("\\")
        if cut >= 0:
            rules = tails.get(text[cut:])
            if rules is not None:
                found |= rules


def field_text(value: Any) -> str:
    """A field value as lower-cased text for substring anchors (lists/dicts: every scalar,
    NUL-separated)."""
    if value is None:
        return ""
    if type(value) is str:
        return value.lower()
    if isinstance(value, Mapping | list):
        parts: list[str] = []
        _walk(value, parts)
        return SEPARATOR.join(parts).lower()
    return str(value).lower()


def _walk(node: Any, parts: list[str]) -> None:
    items = node.values() if isinstance(node, Mapping) else node
    for value in items:
        if isinstance(value, Mapping | list):
            _walk(value, parts)
        elif value is not None:
            parts.append(value if type(value) is str else str(value))


def screen_grams(needles: Mapping[str, object] | Sequence[str]) -> tuple[str, ...]:
    """Few short substrings such that every needle contains at least one (greedy cover: the
    gram in most uncovered needles first, longer grams on ties)."""
    uncovered = set(needles)
    grams: list[str] = []
    while uncovered:
        counts: dict[str, int] = {}
        for needle in uncovered:
            seen = {needle[i : i + n] for n in GRAM_LENGTHS for i in range(len(needle) - n + 1)}
            for gram in seen or {needle}:
                counts[gram] = counts.get(gram, 0) + 1
        best = max(counts, key=lambda g: (counts[g], len(g), g))
        grams.append(best)
        uncovered = {n for n in uncovered if best not in n}
    return tuple(sorted(grams))


def _automaton(needles: Mapping[str, set[int]]) -> Any:
    automaton = ahocorasick.Automaton()
    for needle, rules in needles.items():
        automaton.add_word(needle, frozenset(rules))
    automaton.make_automaton()
    return automaton


def _frozen(table: dict[str, set[int]] | None) -> _Table:
    return {key: frozenset(rules) for key, rules in (table or {}).items()}
