"""Literal anchors: facts of which a matching event must satisfy at least one.

For every rule the engine derives, from its IR condition, a set of anchors such that "the rule
matches" implies "some anchor of the set holds for the event". The prefilter
(:mod:`detections.prefilter`) checks all anchors of a routing bucket at once per event and
yields the few candidate rules worth evaluating; rules without anchors (pure negations,
numbers, ``|exists``) are always candidates. The prefilter only ever removes rules that cannot
match, so it changes speed, never results. Three kinds of anchor, cheapest first:

- ``("eq", field, lit)``: the lower-cased text of the field (of one list element) *is* ``lit``
  (from case-insensitive ``eq`` and value sets): one hash lookup;
- ``("tail", field, seg)``: the lower-cased field text, from its last backslash on, *is*
  ``seg`` (from case-insensitive ``endswith '\\x.exe'``): one hash lookup;
- ``("sub", field or None, lit)``: ``lit`` occurs in the lower-cased field text (None: in any
  value of the event, for keywords): an Aho–Corasick automaton.

Rules of derivation: a string test anchors on its literal (``sub`` literals need 3 chars);
OR needs every branch anchored (union); AND picks its best-anchored branch (hash anchors
first); NOT, numbers, CIDR, field references and ``|exists`` have no anchor.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from detections.ir import Node, Test

MIN_LENGTH: Final = 3

AnchorKind = Literal["eq", "tail", "sub"]
# (kind; the field, or None for "any value" (``sub`` only); the lower-case literal)
Anchor = tuple[AnchorKind, str | None, str]
Anchors = frozenset[Anchor] | None
HASHED: Final = frozenset({"eq", "tail"})


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
    if kind == "field":
        return test_anchors(node[2], node[1])
    if kind == "kw":
        return test_anchors(node[1], None, hashed=False)
    return None


def test_anchors(test: Test, field: str | None, *, hashed: bool = True) -> Anchors:
    """Anchors of one value test on ``field`` (None: keyword, any value)."""
    op = test[0]
    folded = hashed and op in ("eq", "ew", "set") and (op == "set" or not test[2])
    if folded and op == "eq":
        return frozenset({("eq", field, test[1])})
    if folded and op == "set":
        return frozenset(("eq", field, lit) for lit in test[1])
    if folded and op == "ew" and "\\" in test[1]:
        return frozenset({("tail", field, test[1][test[1].rfind("\\") :])})
    if op in ("eq", "sw", "ew", "ct"):
        return _subs((test[1],), field)
    if op == "set":
        return _subs(test[1], field)
    if op == "glob":
        return _subs((max(test[3], key=len),), field) if test[3] else None
    if op == "re":
        return _subs(test[3], field) if test[3] else None
    if op == "any":
        union: set[Anchor] = set()
        for sub in test[1]:
            found = test_anchors(sub, field, hashed=hashed)
            if not found:
                return None
            union |= found
        return frozenset(union)
    return None


def _subs(literals: Iterable[str], field: str | None) -> Anchors:
    found: set[Anchor] = set()
    for literal in literals:
        folded = literal.lower()
        if len(folded) < MIN_LENGTH:
            return None
        found.add(("sub", field, folded))
    return frozenset(found)


_COMMON_PREFIXES: Final = ("c:\\windows\\", "c:\\program files", "\\windows\\")


def _quality(option: tuple[Node, frozenset[Anchor]]) -> tuple[int, int, int, int, int]:
    """Prefer hash lookups, then field-bound literals (keywords need the whole event), then
    exact-value tests, avoid ubiquitous path prefixes, then longer literals, fewer anchors."""
    child, anchors = option
    hashed = int(all(kind in HASHED for kind, _, _ in anchors))
    bound = int(all(field is not None for _, field, _ in anchors))
    exact = int(child[0] == "field" and child[2][0] in ("eq", "set"))
    common = int(any(a.startswith(_COMMON_PREFIXES) for _, _, a in anchors))
    return (hashed, bound, exact - common, min(len(a) for _, _, a in anchors), -len(anchors))
