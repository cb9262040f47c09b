"""Compile a pySigma condition tree into an event predicate (nested closures).

Input is ``SigmaCondition.parse()`` after the processing pipeline ran: ConditionAND / OR / NOT
over ConditionFieldEqualsValueExpression (field = value) and ConditionValueExpression (keyword)
leaves. pySigma has already resolved identifiers, ``1 of x_*`` / ``all of them`` selectors,
value lists (OR, or AND with ``|all``) and modifiers, so this module only decides how to
evaluate each leaf against a nested ECS event.

Leaf semantics: a field path is read from the nested event (``process.parent.executable``); a
list-valued field matches when any element matches; an absent field matches nothing except
``null`` and ``|exists: false``. A keyword (field-less) value matches when any string leaf of the
event contains it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
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
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaString,
    SigmaType,
    SpecialChars,
)

from agents.errors import RuleError
from detections.model import EventPredicate
from detections.values import ValueTest, as_text, compile_value, compile_values

ConditionNode: TypeAlias = (
    ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression
)
Getter = Callable[[Mapping[str, Any]], Any]


def compile_condition(node: ConditionNode | None, fields: set[str]) -> EventPredicate:
    """Condition tree -> predicate. Adds every field read to ``fields``."""
    if node is None:
        raise RuleError("the condition selects no detection items")
    if isinstance(node, ConditionNOT):
        inner = compile_condition(_only_arg(node), fields)
        return lambda event: not inner(event)
    if isinstance(node, ConditionAND):
        return _all_of([compile_condition(arg, fields) for arg in _args(node)])
    if isinstance(node, ConditionOR):
        grouped = _same_field_values(node)
        if grouped is not None:
            field, values = grouped
            fields.add(field)
            return _field_predicate(make_getter(field), compile_values(values))
        return _any_of([compile_condition(arg, fields) for arg in _args(node)])
    if isinstance(node, ConditionFieldEqualsValueExpression):
        fields.add(node.field)
        return _compile_field(node.field, node.value, fields)
    if isinstance(node, ConditionValueExpression):
        return _keyword_predicate(_keyword_value(node.value))
    raise RuleError(f"unsupported condition element {type(node).__name__}")


def make_getter(path: str) -> Getter:
    """Read a dotted path from a nested event (an already-dotted key wins, as in get_path)."""
    parts = tuple(path.split("."))
    if len(parts) == 1:
        return lambda event: event.get(path)

    def getter(event: Mapping[str, Any]) -> Any:
        if path in event:
            return event[path]
        node: Any = event
        try:
            for part in parts:
                node = node[part]
        except (KeyError, TypeError, IndexError):
            return None
        return node

    return getter


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


def _only_arg(node: ConditionItem) -> ConditionNode:
    args = _args(node)
    if len(args) != 1:
        raise RuleError(f"'not' expects one operand, got {len(args)}")
    return args[0]


def _all_of(preds: Sequence[EventPredicate]) -> EventPredicate:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds
        return lambda event: first(event) and second(event)
    frozen = tuple(preds)
    return lambda event: all(pred(event) for pred in frozen)


def _any_of(preds: Sequence[EventPredicate]) -> EventPredicate:
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds
        return lambda event: first(event) or second(event)
    frozen = tuple(preds)
    return lambda event: any(pred(event) for pred in frozen)


_SPECIAL_VALUES = (SigmaExists, SigmaNull, SigmaFieldReference)


def _same_field_values(node: ConditionOR) -> tuple[str, list[SigmaType]] | None:
    """An OR of plain values on one field (a Sigma value list): evaluate with one lookup."""
    field: str | None = None
    values: list[SigmaType] = []
    for arg in node.args:
        if not isinstance(arg, ConditionFieldEqualsValueExpression):
            return None
        if isinstance(arg.value, _SPECIAL_VALUES) or (field is not None and arg.field != field):
            return None
        field = arg.field
        values.append(arg.value)
    return (field, values) if field is not None else None


def _compile_field(field: str, value: SigmaType, fields: set[str]) -> EventPredicate:
    get = make_getter(field)
    if isinstance(value, SigmaExists):
        expected = bool(value.exists)
        return lambda event: _present(get(event)) is expected
    if isinstance(value, SigmaNull):
        return lambda event: not _present(get(event))
    if isinstance(value, SigmaFieldReference):
        fields.add(value.field)
        return _field_reference(get, make_getter(value.field), value)
    return _field_predicate(get, compile_value(value))


def _present(value: Any) -> bool:
    return value is not None and value != []


def _field_predicate(get: Getter, test: ValueTest) -> EventPredicate:
    def predicate(event: Mapping[str, Any]) -> bool:
        value = get(event)
        if value is None:
            return False
        if isinstance(value, list):
            return any(test(item) for item in value)
        return test(value)

    return predicate


def _field_reference(get: Getter, get_other: Getter, ref: SigmaFieldReference) -> EventPredicate:
    def predicate(event: Mapping[str, Any]) -> bool:
        left, right = as_text(get(event)), as_text(get_other(event))
        if left is None or right is None:
            return False
        left, right = left.lower(), right.lower()
        if ref.starts_with and ref.ends_with:
            return right in left
        if ref.starts_with:
            return left.startswith(right)
        if ref.ends_with:
            return left.endswith(right)
        return left == right

    return predicate


def _keyword_value(value: SigmaType) -> ValueTest:
    """Keywords search inside values: a plain string gets implicit leading/trailing ``*``."""
    if isinstance(value, SigmaExpansion):
        return compile_values([_contains(v) for v in value.values])
    return compile_value(_contains(value))


def _contains(value: SigmaType) -> SigmaType:
    if not isinstance(value, SigmaString):
        return value
    star = SpecialChars.WILDCARD_MULTI
    if not value.startswith(star):
        value = star + value
    if not value.endswith(star):
        value = value + star
    return value


def _keyword_predicate(test: ValueTest) -> EventPredicate:
    return lambda event: any(test(leaf) for leaf in _leaves(event))


def _leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, Mapping):
        for child in node.values():
            yield from _leaves(child)
    elif isinstance(node, list):
        for child in node:
            yield from _leaves(child)
    elif node is not None:
        yield node
