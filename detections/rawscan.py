"""Substring anchors searched in the raw JSON line with hyperscan (optional, speed only).

When an event arrives with the JSON line it was parsed from (``RuleSet.fired(event, line)``,
as ``bench/sigma_engine.py`` does), one hyperscan pass over the line's bytes finds every
substring anchor of a routing bucket at once (case-insensitively, ASCII folding), instead of
building lower-cased texts per field and running one Aho–Corasick automaton each. That is sound
only when every string of the event appears in the line as is, up to JSON escaping of ``\\``
and ``"`` (:func:`verbatim`: no ``\\u`` or ``\\/`` escape, and none of the two non-ASCII
characters whose ``lower()`` is ASCII); the escape check runs in the same hyperscan pass, and
the caller falls back to the pure-Python path when it fails or hyperscan is not installed.
ASCII needles only (others: their rules are always candidates). A needle found in the line may
sit in another field or in a key: that only adds candidates, the rule's own predicate decides.
A needle made only of characters a JSON number can contain is not searched (a number's JSON
text may differ from its Python text): its rules are always candidates too. The line must be
strict JSON (orjson refuses raw control characters). Same results with or without hyperscan.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Final

hyperscan: Any
try:  # optional: the pure-Python prefilter gives the same answers, more slowly
    import hyperscan
except ImportError:  # pragma: no cover - exercised where hyperscan is not installed
    hyperscan = None

_NUMERIC: Final = frozenset("0123456789.e+-")
# A \u or \/ escape: the backslash is preceded by an even number of backslashes.
_ESCAPE: Final = rb"(?:^|[^\\])(?:\\\\)*\\[u/]"
# The only non-ASCII characters whose lower() has ASCII in it (UTF-8): KELVIN SIGN -> "k",
# LATIN CAPITAL LETTER I WITH DOT ABOVE -> "i" + U+0307. Elsewhere an ASCII needle in a
# lower-cased value is an ASCII run of the value, so it is in the UTF-8 line caselessly.
_KELVIN: Final = "\u212a".encode()
_DOTTED_I: Final = "\u0130".encode()
_SHORT_ESCAPES: Final = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t",
                         "\b": "\\b", "\f": "\\f"}  # fmt: skip


def available() -> bool:
    return hyperscan is not None


def scanner(needles: Mapping[str, set[int]]) -> RawScanner | None:
    """A scanner for ``needles``, or None (pure-Python path) without hyperscan or when it
    refuses the database (resource limits): speed only, never results."""
    if hyperscan is None:
        return None
    try:
        return RawScanner(needles)
    except hyperscan.error:
        return None


def verbatim(raw: bytes) -> bool:
    """Every ASCII needle in a lower-cased string of this JSON line is in the line caselessly,
    up to ``\\\\``/``\\"``-style escapes: no ``\\u``/``\\/`` escape (escaped backslash pairs
    removed first), no KELVIN SIGN or dotted capital I. (:meth:`RawScanner.scan` checks the
    escapes in the same pass as the needles; this is the reference for tests.)"""
    if not raw.isascii() and (_KELVIN in raw or _DOTTED_I in raw):
        return False
    stripped = raw.replace(b"\\\\", b"")
    return b"\\u" not in stripped and b"\\/" not in stripped


def json_form(literal: str) -> bytes | None:
    """``literal`` as it appears inside a JSON string of a verbatim line; None if it cannot
    appear there at all (a control character JSON writes as ``\\u00XX``). Only for ASCII."""
    out: list[str] = []
    for char in literal:
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif ord(char) < 0x20:
            return None
        else:
            out.append(char)
    return "".join(out).encode("ascii")


class RawScanner:
    """One hyperscan database over a bucket's substring anchors (literal -> rule indices)."""

    __slots__ = ("_always", "_database", "_local", "_rules")

    def __init__(self, needles: Mapping[str, set[int]]) -> None:
        if hyperscan is None:
            raise RuntimeError("hyperscan is not installed")  # callers check available()
        always: set[int] = set()
        patterns: dict[bytes, set[int]] = {}
        for literal, rules in needles.items():
            if set(literal) <= _NUMERIC or not literal.isascii():
                always |= rules
                continue
            encoded = json_form(literal)
            if encoded is not None:  # None: cannot occur in a verbatim line
                patterns.setdefault(encoded, set()).update(rules)
        self._always = frozenset(always)
        # Pattern 0 flags an escape (the line is not verbatim); needle i has id i + 1.
        self._rules = [frozenset(), *(frozenset(rules) for rules in patterns.values())]
        self._database = _database(tuple(patterns))
        self._local = threading.local()  # hyperscan scratch space is per thread

    def scan(self, raw: bytes, found: set[int]) -> bool:
        """Add the rules of every needle occurring in the line ``raw`` to ``found``; False when
        the line is not verbatim (then ``found`` may hold extra rules, never missing ones, and
        the caller must also run the pure-Python prefilter)."""
        if not raw.isascii() and (_KELVIN in raw or _DOTTED_I in raw):
            return False
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = hyperscan.Scratch(self._database)
        flags: list[int] = []
        self._database.scan(raw, match_event_handler=self._hit, context=(found, flags),
                            scratch=scratch)  # fmt: skip
        if flags:
            return False
        found |= self._always
        return True

    def _hit(
        self,
        ident: int,
        _start: int,
        _end: int,
        _flags: int,
        context: tuple[set[int], list[int]],
    ) -> None:
        if ident:
            context[0].update(self._rules[ident])
        else:
            context[1].append(ident)


_DATABASES: dict[tuple[bytes, ...], Any] = {}  # many small buckets share one needle set
_DATABASES_MAX: Final = 512


def _database(patterns: tuple[bytes, ...]) -> Any:
    database = _DATABASES.get(patterns)
    if database is None:
        assert hyperscan is not None  # noqa: S101 - RawScanner checked it
        database = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        flags = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
        database.compile(
            expressions=[_ESCAPE, *(_escape(p) for p in patterns)],
            ids=list(range(len(patterns) + 1)),
            elements=len(patterns) + 1,
            flags=[hyperscan.HS_FLAG_SINGLEMATCH] + [flags] * len(patterns),
        )
        if len(_DATABASES) >= _DATABASES_MAX:
            _DATABASES.clear()
        _DATABASES[patterns] = database
    return database


def _escape(pattern: bytes) -> bytes:
    """A literal as a hyperscan (PCRE) expression: every non-alphanumeric byte as ``\\xHH``."""
    return b"".join(
        bytes((byte,)) if chr(byte).isalnum() else b"\\x%02x" % byte for byte in pattern
    )
