"""Generated Python code per rule: the streaming engine's fast path for one IR condition.

:func:`generate` turns an IR condition (:mod:`detections.ir`) into one plain Python function
``rule(event) -> bool`` whose body inlines the common leaves (string tests on plain fields:
``eq``/``sw``/``ew``/``ct``/``set``, value lists of them, ``re`` and ``glob``) as expressions,
so a leaf costs one ``dict.get``, one ``type`` check, one ``lower()`` and one ``in``/``==``/
``endswith`` instead of three nested closure calls. Everything else (numbers, CIDR, keywords,
field references, dotted paths) and every non-``str`` field value (absent, null, list, int,
bool) goes through the reference closures of :mod:`detections.compiler` and
:mod:`detections.values`, so the generated function answers exactly what
``compile_node(condition)`` answers on every event; ``tests/detections`` checks that over the
SigmaHQ corpus and the regression samples.

Only names go into the generated source: every literal, set, regex and fallback closure is a
constant in the function's namespace, so no rule text is ever interpreted as code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import ahocorasick

from detections.compiler import compile_node
from detections.ir import Node, Test
from detections.model import EventPredicate
from detections.regex_literals import required_symbols
from detections.values import ValueTest, compile_test

# A value list with at least this many ``contains`` literals is searched with one automaton.
AUTOMATON_MIN: Final = 16

_FOLDED_OPS: Final = frozenset({"eq", "sw", "ew", "ct", "set"})


def generate(condition: Node, *, dotted: bool = False) -> EventPredicate:
    """IR condition -> generated predicate (same answers as ``compile_node(condition)``).

    ``dotted``: the predicate will only ever see flat views (:func:`flat_view`), where every
    dotted path is a key of its own, so dotted fields are inlined as one ``dict.get`` too."""
    gen = _Generator(dotted=dotted)
    body = gen.node(condition)
    source = f"def rule(e):\n    return {body}\n"
    namespace: dict[str, Any] = dict(gen.constants)
    # Generated from our own IR; literals are namespace constants, never source text.
    exec(compile(source, "<sekimori-rule>", "exec"), namespace)  # noqa: S102
    predicate: EventPredicate = namespace["rule"]
    return predicate


def field_fallback(test: ValueTest) -> Callable[[object], bool]:
    """The reference field semantics on an already-read value (``compiler._field_predicate``):
    absent/null -> False, a list -> any element, anything else -> the value test."""

    def fallback(value: object) -> bool:
        if value is None:
            return False
        if type(value) is list:
            return any(test(item) for item in value)
        return test(value)

    return fallback


class _Generator:
    def __init__(self, *, dotted: bool = False) -> None:
        self.constants: dict[str, Any] = {}
        self._names = 0
        self._dotted = dotted

    def const(self, value: Any) -> str:
        name = f"k{len(self.constants)}"
        self.constants[name] = value
        return name

    def local(self) -> str:
        self._names += 1
        return f"v{self._names}"

    def node(self, node: Node) -> str:
        kind = node[0]
        if kind == "and":
            return "(" + " and ".join(self.node(child) for child in node[1]) + ")"
        if kind == "or":
            return "(" + " or ".join(self.node(child) for child in node[1]) + ")"
        if kind == "not":
            return f"(not {self.node(node[1])})"
        if kind == "field" and (self._dotted or "." not in node[1]) and _inlinable(node[2]):
            return self.field(node[1], node[2])
        return f"{self.const(compile_node(node))}(e)"

    def field(self, name: str, test: Test) -> str:
        raw, low = self.local(), self.local()
        fallback = self.const(field_fallback(compile_test(test)))
        text = self.on_text(test, raw, low)
        return (
            f"({fallback}({raw}) if type({raw} := e.get({self.const(name)})) is not str "
            f"else {text})"
        )

    def on_text(self, test: Test, raw: str, low: str) -> str:
        """Expression for ``test`` on the str ``raw``; ``low`` is bound to ``raw.lower()`` by
        the first folded part (``(low := raw.lower())``) and reused by the others."""
        parts = list(test[1]) if test[0] == "any" else [test]
        folded: list[Test] = []
        others: list[Test] = []
        for part in parts:
            is_folded = part[0] in _FOLDED_OPS and (part[0] == "set" or not part[2])
            (folded if is_folded else others).append(part)
        exprs = self.folded(folded, low)
        if exprs:
            exprs[0] = exprs[0].replace(f"@{low}@", f"({low} := {raw}.lower())", 1)
            exprs = [e.replace(f"@{low}@", low) for e in exprs]
        for part in others:
            exprs.append(self.other(part, raw))
        return "(" + " or ".join(exprs) + ")"

    def folded(self, parts: list[Test], low: str) -> list[str]:
        """Folded literal tests, grouped: one set lookup, one startswith/endswith with a tuple,
        one ``in`` per contains literal (or one automaton for long lists). ``@low@`` marks
        where the lower-cased value is read."""
        mark = f"@{low}@"
        exact = {lit for p in parts if p[0] == "eq" for lit in (p[1],)}
        exact |= {lit for p in parts if p[0] == "set" for lit in p[1]}
        starts = tuple(sorted({p[1] for p in parts if p[0] == "sw"}))
        ends = tuple(sorted({p[1] for p in parts if p[0] == "ew"}))
        subs = sorted({p[1] for p in parts if p[0] == "ct"})
        exprs: list[str] = []
        if len(exact) == 1:
            exprs.append(f"{mark} == {self.const(next(iter(exact)))}")
        elif exact:
            exprs.append(f"{mark} in {self.const(frozenset(exact))}")
        if starts:
            exprs.append(f"{mark}.startswith({self.const(starts)})")
        if ends:
            exprs.append(f"{mark}.endswith({self.const(ends)})")
        if len(subs) >= AUTOMATON_MIN and "" not in subs:
            exprs.append(f"{self.const(_first_hit(subs))}({mark})")
        else:
            exprs.extend(f"{self.const(sub)} in {mark}" for sub in subs)
        return exprs

    def other(self, test: Test, raw: str) -> str:
        op = test[0]
        if op in ("eq", "sw", "ew", "ct") and test[2]:  # |cased: compare the value as is
            lit = self.const(test[1])
            return {
                "eq": f"{raw} == {lit}",
                "sw": f"{raw}.startswith({lit})",
                "ew": f"{raw}.endswith({lit})",
                "ct": f"{lit} in {raw}",
            }[op]
        if op == "re":
            search = self.const(re.compile(test[1], test[2]).search)
            symbols = required_symbols(test[1], test[2])
            check = f"{self.const(symbols)} in {raw} and " if symbols else ""
            return f"({check}{search}({raw}) is not None)"
        if op == "glob":
            flags = re.DOTALL if test[2] else re.DOTALL | re.IGNORECASE
            return f"({self.const(re.compile(test[1], flags).fullmatch)}({raw}) is not None)"
        return f"{self.const(compile_test(test))}({raw})"


def _inlinable(test: Test) -> bool:
    """Worth inlining: at least one string test (others in a value list are called)."""
    parts = test[1] if test[0] == "any" else (test,)
    return any(p[0] in ("eq", "sw", "ew", "ct", "set", "re", "glob") for p in parts)


def _first_hit(subs: list[str]) -> Callable[[str], bool]:
    automaton = ahocorasick.Automaton()
    for sub in subs:
        automaton.add_word(sub, sub)
    automaton.make_automaton()
    iterate = automaton.iter

    def any_sub(text: str) -> bool:
        return next(iterate(text), None) is not None

    return any_sub


_SCALARS: Final = frozenset({str, int, float, bool, list, type(None)})


def flat_view(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """``event`` plus one key per dotted path into its nested objects (``process.pid``,
    ``process.parent``, ``process.parent.pid`` ...), so ``view.get(path)`` answers exactly
    what :func:`detections.compiler.make_getter` answers on ``event`` for every path. None when
    that cannot hold (a key that itself contains a dot, a nested mapping that is not a dict):
    the caller then uses the reference predicates on ``event``."""
    view = dict(event)
    for key, value in event.items():
        if "." in key:
            return None
        if type(value) is dict:
            if not _flatten_into(view, key, value):
                return None
        elif type(value) not in _SCALARS and isinstance(value, Mapping):
            return None
    return view


def _flatten_into(view: dict[str, Any], prefix: str, node: dict[str, Any]) -> bool:
    for key, value in node.items():
        if "." in key:
            return False
        path = f"{prefix}.{key}"
        view[path] = value
        if type(value) is dict:
            if not _flatten_into(view, path, value):
                return False
        elif type(value) not in _SCALARS and isinstance(value, Mapping):
            return False
    return True


def has_keywords(node: Node) -> bool:
    """The condition searches field-less keywords (every value of the event): such rules
    must see the event itself, not a flat view with its values repeated."""
    kind = node[0]
    if kind == "kw":
        return True
    if kind in ("and", "or"):
        return any(has_keywords(child) for child in node[1])
    if kind == "not":
        return has_keywords(node[1])
    return False
