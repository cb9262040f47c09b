"""The playbook model: frozen, keyword-only dataclasses and ``Literal`` vocabularies.

A playbook is a straight list of steps run top to bottom. A step may jump *forward* with
``next`` (a later step id, or ``close:<resolution>`` to close the alert at once); playbooks
never jump backwards, so every run terminates. Validation lives in :mod:`playbooks.parse`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Final, Literal, TypeAlias

from agents.schema import parse_duration as schema_duration
from collector.models import RESOLUTIONS, Resolution

StepKind = Literal["query", "check", "note", "close"]
STEP_KINDS: Final[tuple[str, ...]] = ("query", "check", "note", "close")

QueryName = Literal["process_tree", "host_connections", "host_events", "destination_history"]
QUERY_NAMES: Final[tuple[str, ...]] = (
    "process_tree",
    "host_connections",
    "host_events",
    "destination_history",
)

CLOSE_PREFIX: Final = "close:"
STEP_ID_RE: Final = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
PLAYBOOK_ID_RE: Final = re.compile(r"^[a-z0-9][a-z0-9_.-]{1,63}$")
MAX_WINDOW: Final = timedelta(days=90)


def parse_duration(text: str) -> timedelta:
    """``"30s"``, ``"10m"``, ``"2h"``, ``"7d"`` -> timedelta. Raises ValueError otherwise."""
    value = schema_duration(text, units="smhd")
    if value > MAX_WINDOW:
        raise ValueError(f"duration {text!r} is longer than the maximum of 90d")
    return value


def close_target(resolution: Resolution) -> str:
    """The ``next`` target that closes the alert with ``resolution``."""
    return f"{CLOSE_PREFIX}{resolution}"


def target_resolution(target: str) -> Resolution | None:
    """The resolution a ``close:<resolution>`` target names, or None for a step id."""
    if not target.startswith(CLOSE_PREFIX):
        return None
    value = target.removeprefix(CLOSE_PREFIX)
    for resolution in RESOLUTIONS:
        if value == resolution:
            return resolution  # type: ignore[return-value]
    raise ValueError(f"bad close target {target!r}: use close:{' | close:'.join(RESOLUTIONS)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryStep:
    """Run a named query around the alert and show the result to the analyst."""

    id: str
    query: QueryName
    window: timedelta = timedelta(minutes=10)
    window_text: str = "10m"
    max_depth: int = 8  # process_tree: ancestor and descendant levels
    title: str = ""
    hint: str = ""
    next: str | None = None
    kind: Literal["query"] = "query"


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckStep:
    """A question to the analyst with fixed choices; ``next`` maps a choice to a target."""

    id: str
    question: str
    choices: tuple[str, ...]
    next: Mapping[str, str] = field(default_factory=dict)
    title: str = ""
    hint: str = ""
    kind: Literal["check"] = "check"

    def target(self, choice: str) -> str | None:
        """Where ``choice`` leads: a step id, ``close:<resolution>``, or None (next step)."""
        return self.next.get(choice)


@dataclass(frozen=True, slots=True, kw_only=True)
class NoteStep:
    """A free-text note from the analyst (optional unless ``required``)."""

    id: str
    prompt: str
    required: bool = False
    title: str = ""
    hint: str = ""
    next: str | None = None
    kind: Literal["note"] = "note"


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseStep:
    """Close the alert: with a fixed ``resolution``, or one the analyst picks from ``choices``."""

    id: str
    resolution: Resolution | None = None
    choices: tuple[Resolution, ...] = ()
    question: str = "Resolution?"
    title: str = ""
    hint: str = ""
    kind: Literal["close"] = "close"


Step: TypeAlias = QueryStep | CheckStep | NoteStep | CloseStep


@dataclass(frozen=True, slots=True, kw_only=True)
class AppliesTo:
    """Which alerts a playbook is for: rule ids, ATT&CK/sekimori tags, or the default."""

    rule_ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    default: bool = False
    priority: int = 0  # breaks ties between tag matches: higher wins


@dataclass(frozen=True, slots=True, kw_only=True)
class Playbook:
    id: str
    title: str
    description: str
    version: int
    applies_to: AppliesTo
    steps: tuple[Step, ...]
    source: str = "<string>"
    sha256: str = ""  # of the YAML file's bytes: records name the exact content that ran

    def index(self, step_id: str) -> int:
        for position, step in enumerate(self.steps):
            if step.id == step_id:
                return position
        raise KeyError(step_id)

    def step(self, step_id: str) -> Step:
        return self.steps[self.index(step_id)]
