"""Compile IR value tests (:mod:`detections.ir`) into tests on one scalar event value.

A :data:`ValueTest` takes one scalar from an event (str, int, float, bool) and answers whether
the Sigma value matches it. List-valued event fields and absent fields are handled one level
up, in :mod:`detections.compiler`. Literals arrive pre-folded, so a test costs one ``lower()``
of the event value and one ``==``/``startswith``/``endswith``/``in``; only genuinely mixed
wildcards use a regular expression.

Semantics (Sigma specification): plain strings compare case-insensitively (``|cased`` opts
out), ``*`` and ``?`` are wildcards unless escaped with ``\\``, ``|re`` is an unanchored search
(case-sensitive unless ``|i``), numbers compare numerically, ``|cidr`` tests address membership,
timestamp parts (``|minute`` … ``|year``) read an ISO-8601 timestamp.
"""

from __future__ import annotations

import ipaddress
import operator
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

from agents.errors import RuleError

ValueTest = Callable[[object], bool]

_COMPARE: Final[dict[str, Callable[[float, float], bool]]] = {
    "lt": operator.lt,
    "lte": operator.le,
    "gt": operator.gt,
    "gte": operator.ge,
    "neq": operator.ne,
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


def compile_test(test: tuple[Any, ...]) -> ValueTest:
    """IR value test -> predicate on one scalar."""
    op = test[0]
    if op in ("eq", "sw", "ew", "ct"):
        return _literal_test(op, test[1], cased=test[2])
    if op == "set":
        return _set_test(frozenset(test[1]))
    if op == "glob":
        flags = re.DOTALL if test[2] else re.DOTALL | re.IGNORECASE
        return _text_test(re.compile(test[1], flags).fullmatch)
    if op == "re":
        return _text_test(re.compile(test[1], test[2]).search)
    if op == "any":
        parts = tuple(compile_test(t) for t in test[1])
        return lambda value: any(part(value) for part in parts)
    if op == "num":
        return _number_test(test[1])
    if op == "cmp":
        return _compare_test(_COMPARE[test[1]], test[2])
    if op == "bool":
        return _bool_test(test[1])
    if op == "cidr":
        return _cidr_test(ipaddress.ip_network(test[1]))
    if op == "ts":
        return _timestamp_test(test[1], test[2])
    raise RuleError(f"unknown value test {op!r}")


def _literal_test(op: str, lit: str, *, cased: bool) -> ValueTest:
    def check(text: str) -> bool:
        if op == "eq":
            return text == lit
        if op == "sw":
            return text.startswith(lit)
        if op == "ew":
            return text.endswith(lit)
        return lit in text

    if cased:

        def cased_test(value: object) -> bool:
            if type(value) is str:
                return check(value)
            text = as_text(value)
            return text is not None and check(text)

        return cased_test

    def folded_test(value: object) -> bool:
        if type(value) is str:
            return check(value.lower())
        text = as_text(value)
        return text is not None and check(text.lower())

    return folded_test


def _set_test(literals: frozenset[str]) -> ValueTest:
    def in_set(value: object) -> bool:
        if type(value) is str:
            return value.lower() in literals
        text = as_text(value)
        return text is not None and text.lower() in literals

    return in_set


def _text_test(check: Callable[[str], object]) -> ValueTest:
    def text_test(value: object) -> bool:
        text = value if type(value) is str else as_text(value)
        return text is not None and check(text) is not None

    return text_test


def _number_test(number: float) -> ValueTest:
    def number_test(value: object) -> bool:
        if type(value) is int:
            return value == number
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


def _compare_test(compare: Callable[[float, float], bool], number: float) -> ValueTest:
    def compare_test(value: object) -> bool:
        got = as_number(value)
        return got is not None and compare(got, number)

    return compare_test


_PARTS: Final[dict[str, Callable[[datetime], int]]] = {
    "minute": lambda t: t.minute,
    "hour": lambda t: t.hour,
    "day": lambda t: t.day,
    "week": lambda t: t.isocalendar().week,
    "month": lambda t: t.month,
    "year": lambda t: t.year,
}


def parse_timestamp(value: object) -> datetime | None:
    """ISO-8601 text (``Z``, offset, or a space separator) or epoch seconds -> datetime."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value)
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _timestamp_test(part: str, number: int) -> ValueTest:
    extract = _PARTS[part]

    def timestamp_test(value: object) -> bool:
        when = parse_timestamp(value)
        return when is not None and extract(when) == number

    return timestamp_test
