"""Compile an IR condition (:mod:`detections.ir`) into an event predicate (nested closures).

Leaf semantics: a field path is read from the event (flat Windows field names such as
``CommandLine``, or dotted ECS paths such as ``process.parent.executable`` read from nested
dicts; an already-dotted key wins); a list-valued field matches when any element matches; an
absent field (or JSON null) matches nothing except ``null`` and ``|exists: false``. A keyword
(field-less) value matches when any scalar anywhere in the event matches it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from agents.errors import RuleError
from detections.ir import Node
from detections.model import EventPredicate
from detections.values import ValueTest, as_text, compile_test

Getter = Callable[[Mapping[str, Any]], Any]


def compile_node(node: Node) -> EventPredicate:
    """IR node -> predicate on an event mapping."""
    kind = node[0]
    if kind == "and":
        return _all_of(tuple(compile_node(child) for child in node[1]))
    if kind == "or":
        return _any_of(tuple(compile_node(child) for child in node[1]))
    if kind == "not":
        inner = compile_node(node[1])
        return lambda event: not inner(event)
    if kind == "field":
        return _field_predicate(make_getter(node[1]), compile_test(node[2]))
    if kind == "exists":
        get, expected = make_getter(node[1]), node[2]
        return lambda event: _present(get(event)) is expected
    if kind == "null":
        get = make_getter(node[1])
        return lambda event: not _present(get(event))
    if kind == "fieldref":
        return _field_reference(make_getter(node[1]), make_getter(node[2]), node[3], node[4])
    if kind == "kw":
        return _keyword(node[1])
    raise RuleError(f"unknown condition node {kind!r}")


def make_getter(path: str) -> Getter:
    """Read a field: a plain key, or a dotted path into nested dicts (a dotted key wins)."""
    if "." not in path:
        return lambda event: event.get(path)
    parts = tuple(path.split("."))

    def getter(event: Mapping[str, Any]) -> Any:
        if path in event:
            return event[path]
        node: Any = event
        for part in parts:
            if not isinstance(node, Mapping):
                return None
            node = node.get(part)
            if node is None:
                return None
        return node

    return getter


def leaves(node: Any) -> Iterator[Any]:
    """Every scalar in an event (nested dicts and lists walked)."""
    if isinstance(node, Mapping):
        for child in node.values():
            yield from leaves(child)
    elif isinstance(node, list):
        for child in node:
            yield from leaves(child)
    elif node is not None:
        yield node


def _keyword(test: tuple[Any, ...]) -> EventPredicate:
    """Keyword search. Case-insensitive substrings (the common case) are looked up in the
    event's lower-cased, NUL-joined values, built once per event and shared by all keyword
    tests of that event; other tests walk every scalar."""
    subs = _substrings(test)
    if subs is not None:
        return lambda event: any(sub in joined_text(event) for sub in subs)
    compiled = compile_test(test)
    return lambda event: any(compiled(leaf) for leaf in leaves(event))


def _substrings(test: tuple[Any, ...]) -> tuple[str, ...] | None:
    if test[0] == "ct" and not test[2] and "\x00" not in test[1]:
        return (test[1],)
    if test[0] == "any":
        found: list[str] = []
        for sub in test[1]:
            one = _substrings(sub)
            if one is None:
                return None
            found.extend(one)
        return tuple(found)
    return None


# (event, its joined text) of the last event searched. One tuple, read and replaced whole:
# threads matching at once (streaming detection, the analytics job) can only miss the cache,
# never pair one event with another event's text.
_LAST_JOINED: tuple[Any, str] = (None, "")


def joined_text(event: Mapping[str, Any]) -> str:
    """Every scalar of ``event`` as text, NUL-joined and lower-cased: what keyword tests
    search (built once per event: the last event's text is kept)."""
    global _LAST_JOINED  # noqa: PLW0603 - a one-entry cache, replaced atomically
    cached = _LAST_JOINED
    if cached[0] is event:  # a strong reference: the identity check cannot be fooled
        return cached[1]
    parts = [leaf if type(leaf) is str else as_text(leaf) or "" for leaf in leaves(event)]
    text = "\x00".join(parts).lower()
    _LAST_JOINED = (event, text)
    return text


def _all_of(preds: tuple[EventPredicate, ...]) -> EventPredicate:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds
        return lambda event: first(event) and second(event)
    if len(preds) == 3:
        one, two, three = preds
        return lambda event: one(event) and two(event) and three(event)
    return lambda event: all(pred(event) for pred in preds)


def _any_of(preds: tuple[EventPredicate, ...]) -> EventPredicate:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds
        return lambda event: first(event) or second(event)
    if len(preds) == 3:
        one, two, three = preds
        return lambda event: one(event) or two(event) or three(event)
    return lambda event: any(pred(event) for pred in preds)


def _present(value: Any) -> bool:
    return value is not None and value != []


def _field_predicate(get: Getter, test: ValueTest) -> EventPredicate:
    def predicate(event: Mapping[str, Any]) -> bool:
        value = get(event)
        if value is None:
            return False
        if type(value) is list:
            return any(test(item) for item in value)
        return test(value)

    return predicate


def _field_reference(get: Getter, get_other: Getter, sw: bool, ew: bool) -> EventPredicate:
    def predicate(event: Mapping[str, Any]) -> bool:
        left, right = as_text(get(event)), as_text(get_other(event))
        if left is None or right is None:
            return False
        left, right = left.lower(), right.lower()
        if sw and ew:
            return right in left
        if sw:
            return left.startswith(right)
        if ew:
            return left.endswith(right)
        return left == right

    return predicate
