"""Lower a pySigma condition tree (after the processing pipeline) to a small plain-data IR.

The IR is nested tuples of str/int/float/bool only, so a compiled corpus can be cached with
``pickle`` and turned back into predicates (:mod:`detections.compiler`) in milliseconds, and so
the literal-anchor prefilter (:mod:`detections.anchors`) can reason about it.

Nodes::

    ("and", (node, ...))  ("or", (node, ...))  ("not", node)
    ("field", name, test)            a value test on one field (list values: any element)
    ("exists", name, bool)           |exists
    ("null", name)                   field absent or null
    ("fieldref", name, other, sw, ew)
    ("kw", test)                     keyword: any scalar anywhere in the event

Value tests (``lit`` is pre-folded to lower case unless ``cased``)::

    ("eq"|"sw"|"ew"|"ct", lit, cased)        equality / prefix / suffix / substring
    ("glob", regex, cased, anchors)          mixed wildcards, anchored full match
    ("set", (lit, ...))                      case-insensitive equality with any literal
    ("re", pattern, flags, anchors)          unanchored search
    ("num", n) ("cmp", op, n) ("bool", b) ("cidr", network) ("ts", part, n)
    ("any", (test, ...))                     alternatives (value lists, windash, base64offset)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, TypeAlias

from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from agents.errors import RuleError
from detections.regex_literals import required_literals

Node: TypeAlias = tuple[Any, ...]
Test: TypeAlias = tuple[Any, ...]
ConditionNode: TypeAlias = (
    ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression
)
_STAR = SpecialChars.WILDCARD_MULTI


def lower_condition(node: ConditionNode | None) -> Node:
    """pySigma condition tree -> IR node."""
    if node is None:
        raise RuleError("the condition selects no detection items")
    if isinstance(node, ConditionNOT):
        (arg,) = _args(node)
        return ("not", lower_condition(arg))
    if isinstance(node, ConditionAND):
        return _flat("and", [lower_condition(arg) for arg in _args(node)])
    if isinstance(node, ConditionOR):
        return _or(node)
    if isinstance(node, ConditionFieldEqualsValueExpression):
        return _field(node.field, node.value)
    if isinstance(node, ConditionValueExpression):
        return ("kw", _keyword_test(node.value))
    raise RuleError(f"unsupported condition element {type(node).__name__}")


def fields_of(node: Node, into: set[str]) -> set[str]:
    """Every field name an IR node reads."""
    kind = node[0]
    if kind in ("and", "or"):
        for child in node[1]:
            fields_of(child, into)
    elif kind == "not":
        fields_of(node[1], into)
    elif kind in ("field", "exists", "null"):
        into.add(node[1])
    elif kind == "fieldref":
        into.update((node[1], node[2]))
    return into


def _args(node: ConditionItem) -> list[ConditionNode]:
    args: list[ConditionNode] = []
    for arg in node.args:
        if arg is None:
            continue
        if not isinstance(
            arg, ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression
        ):
            raise RuleError(f"unresolved condition element {arg!r}")
        args.append(arg)
    return args


def _flat(kind: str, children: list[Node]) -> Node:
    if len(children) == 1:
        return children[0]
    merged: list[Node] = []
    for child in children:
        merged.extend(child[1] if child[0] == kind else (child,))
    return (kind, tuple(merged))


_SPECIAL = (SigmaExists, SigmaNull, SigmaFieldReference)


def _or(node: ConditionOR) -> Node:
    """A value list on one field becomes one field test (one lookup, literals in a set)."""
    args = _args(node)
    fields = {a.field for a in args if isinstance(a, ConditionFieldEqualsValueExpression)}
    if (
        len(fields) == 1
        and all(isinstance(a, ConditionFieldEqualsValueExpression) for a in args)
        and not any(isinstance(a.value, _SPECIAL) for a in args)  # type: ignore[union-attr]
    ):
        tests = [value_test(a.value) for a in args]  # type: ignore[union-attr]
        return ("field", fields.pop(), any_of(tests))
    return _flat("or", [lower_condition(arg) for arg in args])


def _field(field: str, value: SigmaType) -> Node:
    if isinstance(value, SigmaExists):
        return ("exists", field, bool(value.exists))
    if isinstance(value, SigmaNull):
        return ("null", field)
    if isinstance(value, SigmaFieldReference):
        return ("fieldref", field, value.field, value.starts_with, value.ends_with)
    return ("field", field, value_test(value))


def any_of(tests: Sequence[Test]) -> Test:
    """OR of value tests: exact case-insensitive literals are merged into one set test."""
    exact: list[str] = []
    others: list[Test] = []
    for test in tests:
        if test[0] == "eq" and not test[2]:
            exact.append(test[1])
        elif test[0] == "set":
            exact.extend(test[1])
        elif test[0] == "any":
            others.extend(test[1])
        else:
            others.append(test)
    if len(exact) == 1:
        others.insert(0, ("eq", exact[0], False))
    elif exact:
        others.insert(0, ("set", tuple(sorted(set(exact)))))
    return others[0] if len(others) == 1 else ("any", tuple(others))


def value_test(value: SigmaType) -> Test:
    """One Sigma value (after modifiers) -> IR value test."""
    if isinstance(value, SigmaExpansion):
        return any_of([value_test(v) for v in value.values])
    if isinstance(value, SigmaString):
        return _string_test(value, cased=isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaTimestampPart):
        return ("ts", value.timestamp_part.name.lower(), int(value.number))
    if isinstance(value, SigmaNumber):
        return ("num", value.number)
    if isinstance(value, SigmaBool):
        return ("bool", value.boolean)
    if isinstance(value, SigmaRegularExpression):
        flags = 0
        for flag in value.flags:
            flags |= SigmaRegularExpression.sigma_to_python_flags[flag]
        pattern = str(value.regexp)
        re.compile(pattern, flags)  # reject a bad pattern at load time
        return ("re", pattern, flags, required_literals(pattern, flags))
    if isinstance(value, SigmaCIDRExpression):
        return ("cidr", str(value.network))
    if isinstance(value, SigmaCompareExpression):
        return ("cmp", value.op.name.lower(), value.number.number)
    raise RuleError(
        f"value type {type(value).__name__} is not supported by the streaming engine",
        remedy="see docs/rules.md for the supported modifiers",
    )


def _string_test(value: SigmaString, *, cased: bool) -> Test:
    parts = value.s
    for part in parts:
        if isinstance(part, Placeholder):
            raise RuleError(
                f"placeholder %{part.name}% is not resolved",
                remedy="pass placeholders=... to load_rules, or drop the |expand modifier",
            )

    def fold(text: str) -> str:
        return text if cased else text.lower()

    texts = [p for p in parts if isinstance(p, str)]
    specials = [p for p in parts if isinstance(p, SpecialChars)]
    if not specials:
        return ("eq", fold("".join(texts)), cased)
    if all(s is _STAR for s in specials) and len(texts) <= 1:
        literal = fold(texts[0]) if texts else ""
        shape = (parts[0] is _STAR, parts[-1] is _STAR)
        if not texts or shape == (True, True):
            return ("ct", literal, cased)
        if shape == (False, True):
            return ("sw", literal, cased)
        if shape == (True, False):
            return ("ew", literal, cased)
    pattern = "".join(
        re.escape(p) if isinstance(p, str) else (".*" if p is _STAR else ".") for p in parts
    )
    return ("glob", pattern, cased, tuple(t.lower() for t in texts if t))


def _keyword_test(value: SigmaType) -> Test:
    """Keywords search inside values: a plain string gets implicit leading/trailing ``*``."""
    if isinstance(value, SigmaExpansion):
        return any_of([_keyword_test(v) for v in value.values])
    if isinstance(value, SigmaString):
        if not value.startswith(_STAR):
            value = _STAR + value
        if not value.endswith(_STAR):
            value = value + _STAR
    return value_test(value)
