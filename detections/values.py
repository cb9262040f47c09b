"""Compile Sigma values (after modifiers) into tests on one scalar event value.

A :data:`ValueTest` takes one scalar from an event (str, int, float, bool) and answers whether
the Sigma value matches it. List-valued event fields and absent fields are handled one level
up, in :mod:`detections.compiler`. Everything that can be decided at compile time is: string
patterns are reduced to ``==``/``startswith``/``endswith``/``in`` on pre-lowered literals, and
only genuinely mixed wildcards fall back to a compiled regular expression.

Semantics (Sigma specification): plain strings compare case-insensitively (``|cased`` opts
out), ``*`` and ``?`` are wildcards unless escaped with ``\\``, ``|re`` is an unanchored search
(case-sensitive unless ``|i``), numbers compare numerically, ``|cidr`` tests address membership.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable, Sequence
from typing import Final

from sigma.types import (
    CompareOperators,
    Placeholder,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExpansion,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from agents.errors import RuleError

ValueTest = Callable[[object], bool]

_COMPARE: Final[dict[CompareOperators, Callable[[float, float], bool]]] = {
    CompareOperators.LT: operator.lt,
    CompareOperators.LTE: operator.le,
    CompareOperators.GT: operator.gt,
    CompareOperators.GTE: operator.ge,
    CompareOperators.NEQ: operator.ne,
}


def as_text(value: object) -> str | None:
    """The string form Sigma string values are compared against (None: not comparable)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return None


def as_number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def compile_value(value: SigmaType) -> ValueTest:
    """One Sigma value -> a test on one scalar. Raises RuleError for unsupported types."""
    if isinstance(value, SigmaExpansion):  # windash/base64offset: alternatives, always OR
        return compile_any([compile_value(v) for v in value.values])
    if isinstance(value, SigmaString):  # includes SigmaCasedString
        return _string_test(value, cased=isinstance(value, SigmaCasedString))
    if isinstance(value, SigmaTimestampPart):
        raise RuleError(
            "timestamp-part modifiers (|minute, |hour, ...) are not supported by the streaming "
            "engine",
            remedy="match on @timestamp with |re, or drop the modifier",
        )
    if isinstance(value, SigmaNumber):
        return _number_test(value.number)
    if isinstance(value, SigmaBool):
        return _bool_test(value.boolean)
    if isinstance(value, SigmaRegularExpression):
        return _regex_test(value)
    if isinstance(value, SigmaCIDRExpression):
        return _cidr_test(value.network)
    if isinstance(value, SigmaCompareExpression):
        return _compare_test(value.op, value.number.number)
    raise RuleError(
        f"value type {type(value).__name__} is not supported by the streaming engine",
        remedy="see docs/rules.md for the supported modifiers",
    )


def compile_values(values: Sequence[SigmaType]) -> ValueTest:
    """Several values OR-linked on one field: exact case-insensitive strings become one set."""
    exact: set[str] = set()
    others: list[ValueTest] = []
    for value in values:
        literal = _plain_literal(value)
        if literal is not None:
            exact.add(literal.lower())
        else:
            others.append(compile_value(value))
    if exact:
        others.insert(0, _set_test(frozenset(exact)))
    return compile_any(others)


def compile_any(tests: Sequence[ValueTest]) -> ValueTest:
    if len(tests) == 1:
        return tests[0]
    frozen = tuple(tests)

    def any_test(value: object) -> bool:
        return any(test(value) for test in frozen)

    return any_test


def _plain_literal(value: SigmaType) -> str | None:
    if type(value) is SigmaString and all(isinstance(part, str) for part in value.s):
        return "".join(part for part in value.s if isinstance(part, str))
    return None


def _set_test(literals: frozenset[str]) -> ValueTest:
    def in_set(value: object) -> bool:
        text = as_text(value)
        return text is not None and text.lower() in literals

    return in_set


def _string_test(value: SigmaString, *, cased: bool) -> ValueTest:
    parts = value.s
    for part in parts:
        if isinstance(part, Placeholder):
            raise RuleError(
                f"placeholder %{part.name}% is not resolved",
                remedy="remove the |expand modifier or resolve the placeholder in a pipeline",
            )
    fold: Callable[[str], str] = (lambda s: s) if cased else str.lower
    star = SpecialChars.WILDCARD_MULTI
    texts = [p for p in parts if isinstance(p, str)]
    specials = [p for p in parts if isinstance(p, SpecialChars)]
    if not specials:
        literal = fold("".join(texts))
        return _text_test(lambda t: fold(t) == literal)
    if all(s is star for s in specials) and len(texts) <= 1:
        literal = fold(texts[0]) if texts else ""
        shape = (parts[0] is star, parts[-1] is star)
        if not texts or shape == (True, True):
            return _text_test(lambda t: literal in fold(t))
        if shape == (False, True):
            return _text_test(lambda t: fold(t).startswith(literal))
        if shape == (True, False):
            return _text_test(lambda t: fold(t).endswith(literal))
    pattern = "".join(
        re.escape(p) if isinstance(p, str) else (".*" if p is star else ".") for p in parts
    )
    compiled = re.compile(pattern, re.DOTALL if cased else re.DOTALL | re.IGNORECASE)
    return _text_test(lambda t: compiled.fullmatch(t) is not None)


def _text_test(check: Callable[[str], bool]) -> ValueTest:
    def text_test(value: object) -> bool:
        text = as_text(value)
        return text is not None and check(text)

    return text_test


def _number_test(number: float) -> ValueTest:
    def number_test(value: object) -> bool:
        got = as_number(value)
        return got is not None and got == number

    return number_test


def _bool_test(expected: bool) -> ValueTest:
    word = "true" if expected else "false"

    def bool_test(value: object) -> bool:
        if isinstance(value, bool):
            return value is expected
        return isinstance(value, str) and value.lower() == word

    return bool_test


def _regex_test(value: SigmaRegularExpression) -> ValueTest:
    flags = 0
    for flag in value.flags:
        flags |= SigmaRegularExpression.sigma_to_python_flags[flag]
    compiled = re.compile(str(value.regexp), flags)
    return _text_test(lambda t: compiled.search(t) is not None)


def _cidr_test(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> ValueTest:
    def cidr_test(value: object) -> bool:
        if not isinstance(value, str):
            return False
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return address.version == network.version and address in network

    return cidr_test


def _compare_test(op: CompareOperators, number: float) -> ValueTest:
    compare = _COMPARE[op]

    def compare_test(value: object) -> bool:
        got = as_number(value)
        return got is not None and compare(got, number)

    return compare_test
