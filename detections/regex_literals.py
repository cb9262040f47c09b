"""Literals every match of a regular expression must contain (for the anchor prefilter).

Walks Python's own regex parse tree: a run of ``LITERAL`` items at the top level of the pattern
is mandatory, so any match contains it. A top-level alternation yields one literal per branch
(a match contains at least one of them). Anything more clever is not worth the risk: when in
doubt the answer is "no anchor", which only costs speed, never correctness.
"""

from __future__ import annotations

import importlib
import re
from typing import Any, Final

# Python's own regex parser (CPython 3.11+ module names); typeshed does not describe it.
_sre_parse: Any = importlib.import_module("re._parser")
_sre_constants: Any = importlib.import_module("re._constants")

_LITERAL: Final = _sre_constants.LITERAL
_BRANCH: Final = _sre_constants.BRANCH
_MIN_ANCHOR: Final = 3


def required_literals(pattern: str, flags: int = 0) -> tuple[str, ...]:
    """Lower-cased literals of which every match contains at least one; () when unknown."""
    try:
        parsed = _sre_parse.parse(pattern, flags)
    except re.error:
        return ()
    items = list(parsed)
    if len(items) == 1 and items[0][0] is _BRANCH:
        found: list[str] = []
        for branch in items[0][1][1]:
            best = _longest_run(list(branch))
            if not best:
                return ()
            found.append(best)
        return tuple(sorted(set(found)))
    best = _longest_run(items)
    return (best,) if best else ()


def required_symbols(pattern: str, flags: int = 0) -> str:
    """A run of ASCII non-letters every match contains ("" when unknown): checking ``run in
    text`` before the regex is exact whatever the case flags (Python's ``re`` folds no ASCII
    digit or punctuation to another character)."""
    try:
        parsed = _sre_parse.parse(pattern, flags)
    except re.error:
        return ""
    best = ""
    run: list[str] = []
    for op, arg in [*list(parsed), (None, None)]:
        if op is _LITERAL and arg < 0x80 and not chr(arg).isalpha():
            run.append(chr(arg))
            continue
        if len(run) > len(best):
            best = "".join(run)
        run = []
    return best


def _longest_run(items: list[tuple[Any, Any]]) -> str:
    best = ""
    run: list[str] = []
    for op, arg in [*items, (None, None)]:
        if op is _LITERAL:
            run.append(chr(arg))
            continue
        text = "".join(run).lower()
        if len(text) > len(best):
            best = text
        run = []
    return best if len(best) >= _MIN_ANCHOR else ""
