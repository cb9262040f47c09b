"""Turn one YAML document (already safe-loaded) into a :class:`Playbook`, strictly.

Every problem raises :class:`SpecError` with the YAML path it concerns (``("steps", 2,
"next")``) so the loader can name the file, the line, the step and the problem. Checked:
unknown and missing keys, wrong types, unknown step kinds and queries, duplicate step ids,
bad durations and resolutions, ``next`` targets that do not exist or jump backwards, steps no
path reaches, and paths that run past the last step without closing the alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from collector.models import RESOLUTIONS, Resolution
from playbooks.model import (
    CLOSE_PREFIX,
    PLAYBOOK_ID_RE,
    QUERY_NAMES,
    STEP_ID_RE,
    STEP_KINDS,
    AppliesTo,
    CheckStep,
    CloseStep,
    NoteStep,
    Playbook,
    QueryName,
    QueryStep,
    Step,
    parse_duration,
)

YamlPath = tuple[str | int, ...]

_TOP_KEYS: Final = frozenset({"id", "title", "description", "version", "applies_to", "steps"})
_APPLIES_KEYS: Final = frozenset({"rule_ids", "tags", "default", "priority"})
_COMMON_STEP_KEYS: Final = frozenset({"id", "kind", "title", "hint"})
_STEP_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "query": frozenset({"query", "window", "max_depth", "next"}),
    "check": frozenset({"question", "choices", "next"}),
    "note": frozenset({"prompt", "required", "next"}),
    "close": frozenset({"resolution", "choices", "question"}),
}
_DEFAULT_WINDOWS: Final[Mapping[str, str]] = {
    "process_tree": "10m",
    "host_connections": "10m",
    "host_events": "5m",
    "destination_history": "30d",
}
MAX_TREE_DEPTH: Final = 32


class SpecError(Exception):
    """One validation problem at a YAML path, optionally inside a named step."""

    def __init__(self, path: YamlPath, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.message = message
        self.step = step


def yaml_text(value: object) -> str:
    """A scalar as the text the author typed: YAML 1.1 reads ``yes``/``no`` as booleans."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


# -- typed accessors ------------------------------------------------------------------------
def _mapping(value: object, path: YamlPath, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"{what} must be a mapping, got {type(value).__name__}")
    return value


def _check_keys(
    data: Mapping[str, Any], allowed: frozenset[str], path: YamlPath, what: str
) -> None:
    for key in data:
        if key not in allowed:
            known = ", ".join(sorted(allowed))
            raise SpecError((*path, str(key)), f"unknown key {key!r} in {what} (known: {known})")


def _str(data: Mapping[str, Any], key: str, path: YamlPath, *, default: str | None = None) -> str:
    if key not in data:
        if default is None:
            raise SpecError(path, f"missing required key {key!r}")
        return default
    value = data[key]
    if isinstance(value, bool):
        raise SpecError(
            (*path, key), f"{key!r} must be text; quote {value!r} (YAML reads yes/no as booleans)"
        )
    if not isinstance(value, str) or not value.strip():
        raise SpecError((*path, key), f"{key!r} must be non-empty text, got {value!r}")
    return value.strip()


def _str_list(value: object, path: YamlPath, what: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise SpecError(path, f"{what} must be a list, got {type(value).__name__}")
    items: list[str] = []
    for index, item in enumerate(value):
        if isinstance(item, bool):
            text = yaml_text(item)
            raise SpecError(
                (*path, index),
                f"{what} item {text} reads as a boolean in YAML: quote it ('{text}')",
            )
        if not isinstance(item, str) or not item.strip():
            raise SpecError((*path, index), f"{what} items must be non-empty text, got {item!r}")
        if item.strip() in items:
            raise SpecError((*path, index), f"duplicate {what} item {item!r}")
        items.append(item.strip())
    return tuple(items)


def _int(value: object, path: YamlPath, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(path, f"{what} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _bool(value: object, path: YamlPath, what: str) -> bool:
    if not isinstance(value, bool):
        raise SpecError(path, f"{what} must be true or false, got {value!r}")
    return value


def _resolution(value: object, path: YamlPath) -> Resolution:
    for resolution in RESOLUTIONS:
        if value == resolution:
            return resolution  # type: ignore[return-value]
    raise SpecError(path, f"bad resolution {value!r}: use one of {', '.join(RESOLUTIONS)}")


def _target(value: object, path: YamlPath) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(path, f"next target must be a step id or close:<resolution>, got {value!r}")
    if value.startswith(CLOSE_PREFIX):
        _resolution(value.removeprefix(CLOSE_PREFIX), path)
    elif not STEP_ID_RE.match(value):
        raise SpecError(path, f"next target {value!r} is neither a step id nor close:<resolution>")
    return value


# -- the document ---------------------------------------------------------------------------
def parse_playbook_data(data: object, *, source: str = "<string>", sha256: str = "") -> Playbook:
    """Validate a safe-loaded YAML document and build the playbook. Raises :class:`SpecError`."""
    top = _mapping(data, (), "a playbook")
    _check_keys(top, _TOP_KEYS, (), "the playbook")
    playbook_id = _str(top, "id", ())
    if not PLAYBOOK_ID_RE.match(playbook_id):
        raise SpecError(("id",), f"bad playbook id {playbook_id!r}: use lower-case a-z, 0-9, _ . -")
    if "version" not in top:
        raise SpecError((), "missing required key 'version'")
    if "applies_to" not in top:
        raise SpecError((), "missing required key 'applies_to'")
    if "steps" not in top:
        raise SpecError((), "missing required key 'steps'")
    raw_steps = top["steps"]
    if not isinstance(raw_steps, list) or not raw_steps:
        raise SpecError(("steps",), "steps must be a non-empty list")
    steps = tuple(_step(raw, ("steps", index)) for index, raw in enumerate(raw_steps))
    _check_flow(steps)
    return Playbook(
        id=playbook_id,
        title=_str(top, "title", ()),
        description=_str(top, "description", ()),
        version=_int(top["version"], ("version",), "version", 1, 1_000_000),
        applies_to=_applies_to(top["applies_to"]),
        steps=steps,
        source=source,
        sha256=sha256,
    )


def _applies_to(value: object) -> AppliesTo:
    path: YamlPath = ("applies_to",)
    data = _mapping(value, path, "applies_to")
    _check_keys(data, _APPLIES_KEYS, path, "applies_to")
    rule_ids = _str_list(data.get("rule_ids", []), (*path, "rule_ids"), "rule_ids")
    tags = _str_list(data.get("tags", []), (*path, "tags"), "tags")
    default = _bool(data.get("default", False), (*path, "default"), "default")
    priority = _int(data.get("priority", 0), (*path, "priority"), "priority", -100, 100)
    if not (rule_ids or tags or default):
        raise SpecError(path, "applies_to matches nothing: give rule_ids, tags or default: true")
    return AppliesTo(
        rule_ids=rule_ids,
        tags=tuple(tag.lower() for tag in tags),
        default=default,
        priority=priority,
    )


def _step(raw: object, path: YamlPath) -> Step:
    data = _mapping(raw, path, "a step")
    step_id = _str(data, "id", path)
    if not STEP_ID_RE.match(step_id):
        raise SpecError((*path, "id"), f"bad step id {step_id!r}: use lower-case a-z, 0-9 and _")
    try:
        kind = _kind(data, path)
        _check_keys(data, _COMMON_STEP_KEYS | _STEP_KEYS[kind], path, f"a {kind} step")
        title = _str(data, "title", path) if "title" in data else ""
        hint = _str(data, "hint", path) if "hint" in data else ""
        if kind == "query":
            return _query_step(data, path, step_id, title, hint)
        if kind == "check":
            return _check_step(data, path, step_id, title, hint)
        if kind == "note":
            return NoteStep(
                id=step_id,
                prompt=_str(data, "prompt", path),
                required=_bool(data.get("required", False), (*path, "required"), "required"),
                next=_target(data["next"], (*path, "next")) if "next" in data else None,
                title=title,
                hint=hint,
            )
        return _close_step(data, path, step_id, title, hint)
    except SpecError as problem:
        problem.step = step_id
        raise


def _kind(data: Mapping[str, Any], path: YamlPath) -> str:
    kind = _str(data, "kind", path)
    if kind not in STEP_KINDS:
        known = ", ".join(STEP_KINDS)
        raise SpecError((*path, "kind"), f"unknown step kind {kind!r} (known: {known})")
    return kind


def _query_step(
    data: Mapping[str, Any], path: YamlPath, step_id: str, title: str, hint: str
) -> QueryStep:
    name = _str(data, "query", path)
    if name not in QUERY_NAMES:
        raise SpecError(
            (*path, "query"), f"unknown query {name!r} (known: {', '.join(QUERY_NAMES)})"
        )
    query: QueryName = name  # type: ignore[assignment]
    window_text = data.get("window", _DEFAULT_WINDOWS[name])
    try:
        window = parse_duration(window_text)
    except ValueError as exc:
        raise SpecError((*path, "window"), str(exc)) from None
    if "max_depth" in data and query != "process_tree":
        raise SpecError((*path, "max_depth"), "max_depth applies only to the process_tree query")
    max_depth = _int(data.get("max_depth", 8), (*path, "max_depth"), "max_depth", 1, MAX_TREE_DEPTH)
    return QueryStep(
        id=step_id,
        query=query,
        window=window,
        window_text=str(window_text),
        max_depth=max_depth,
        next=_target(data["next"], (*path, "next")) if "next" in data else None,
        title=title,
        hint=hint,
    )


def _check_step(
    data: Mapping[str, Any], path: YamlPath, step_id: str, title: str, hint: str
) -> CheckStep:
    question = _str(data, "question", path)
    if "choices" not in data:
        raise SpecError(path, "missing required key 'choices'")
    choices = _str_list(data["choices"], (*path, "choices"), "choices")
    if len(choices) < 2:
        raise SpecError((*path, "choices"), "a check needs at least two choices")
    nexts: dict[str, str] = {}
    if "next" in data:
        mapping = _mapping(data["next"], (*path, "next"), "next of a check step (choice: target)")
        for raw_key, target in mapping.items():
            key = yaml_text(raw_key)
            if key not in choices:
                raise SpecError(
                    (*path, "next", key),
                    f"next names choice {key!r} that is not among the choices {list(choices)}",
                )
            nexts[key] = _target(target, (*path, "next", key))
    return CheckStep(
        id=step_id, question=question, choices=choices, next=nexts, title=title, hint=hint
    )


def _close_step(
    data: Mapping[str, Any], path: YamlPath, step_id: str, title: str, hint: str
) -> CloseStep:
    if "resolution" in data and "choices" in data:
        raise SpecError(path, "give either a fixed resolution or choices for the analyst, not both")
    if "resolution" in data:
        return CloseStep(
            id=step_id,
            resolution=_resolution(data["resolution"], (*path, "resolution")),
            title=title,
            hint=hint,
        )
    raw = data.get("choices", list(RESOLUTIONS))
    names = _str_list(raw, (*path, "choices"), "choices")
    choices = tuple(_resolution(name, (*path, "choices")) for name in names)
    if len(choices) < 2:
        raise SpecError((*path, "choices"), "give at least two resolutions, or a fixed resolution")
    question = _str(data, "question", path) if "question" in data else "Resolution?"
    return CloseStep(id=step_id, choices=choices, question=question, title=title, hint=hint)


# -- flow -----------------------------------------------------------------------------------
def _targets(step: Step) -> Sequence[tuple[str, YamlPath]]:
    """Explicit jump targets of a step with the YAML sub-path of each."""
    if isinstance(step, CheckStep):
        return [(target, ("next", choice)) for choice, target in step.next.items()]
    if isinstance(step, QueryStep | NoteStep) and step.next is not None:
        return [(step.next, ("next",))]
    return []


def _falls_through(step: Step) -> bool:
    if isinstance(step, CloseStep):
        return False
    if isinstance(step, CheckStep):
        return any(choice not in step.next for choice in step.choices)
    return step.next is None


def _check_flow(steps: tuple[Step, ...]) -> None:
    positions: dict[str, int] = {}
    for index, step in enumerate(steps):
        if step.id in positions:
            raise SpecError(
                ("steps", index, "id"),
                f"duplicate step id {step.id!r} (first used by steps[{positions[step.id]}])",
                step=step.id,
            )
        positions[step.id] = index
    reachable = {0}
    for index, step in enumerate(steps):
        for target, sub in _targets(step):
            if target.startswith(CLOSE_PREFIX):
                continue
            where: YamlPath = ("steps", index, *sub)
            if target not in positions:
                known = ", ".join(positions)
                raise SpecError(
                    where, f"next target {target!r} does not exist (steps: {known})", step=step.id
                )
            if positions[target] <= index:
                raise SpecError(
                    where,
                    f"next target {target!r} jumps backwards; playbooks only run forward",
                    step=step.id,
                )
            if index in reachable:
                reachable.add(positions[target])
        if index in reachable and _falls_through(step):
            if index == len(steps) - 1:
                raise SpecError(
                    ("steps", index),
                    "the playbook can run past its last step without closing the alert;"
                    " end with a close step",
                    step=step.id,
                )
            reachable.add(index + 1)
    for index, step in enumerate(steps):
        if index not in reachable:
            raise SpecError(("steps", index), "unreachable: no step leads here", step=step.id)
