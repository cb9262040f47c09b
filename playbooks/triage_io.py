"""How a playbook run talks to the analyst: the :class:`TriageIO` protocol.

The CLI implements it with an interactive rich UI; :class:`AnswersFileIO` answers from a
YAML/JSON file (``sekimori triage ALERT --answers FILE``) for unattended runs and tests.
The runner validates every answer against the step's choices whatever the IO, so an IO that
returns something else fails the run with a PlaybookError naming the step.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import yaml

from agents.errors import PlaybookError
from playbooks.model import CheckStep, CloseStep, NoteStep, Playbook, QueryStep
from playbooks.parse import yaml_text
from playbooks.queries import QueryResult

MAX_ANSWERS_BYTES = 1_000_000


class TriageIO(Protocol):
    def show(self, step: QueryStep, result: QueryResult) -> None:
        """Present a query result (a process tree or an event list) to the analyst."""
        ...

    def ask(self, step: CheckStep | CloseStep, choices: tuple[str, ...]) -> str:
        """Ask ``step.question`` and return exactly one of ``choices``."""
        ...

    def note(self, step: NoteStep) -> str:
        """Ask for free text (``step.prompt``); may be empty unless ``step.required``."""
        ...


def load_answers(path: Path | str) -> dict[str, str]:
    """Read an answers file: a mapping of step id -> answer (YAML, or JSON for ``*.json``)."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_ANSWERS_BYTES:
            raise PlaybookError("answers file is too large", source=str(file))
        text = file.read_text(encoding="utf-8")
        data: object = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except OSError as exc:
        raise PlaybookError(
            f"cannot read answers: {exc.strerror or exc}", source=str(file)
        ) from None
    except (ValueError, yaml.YAMLError) as exc:
        raise PlaybookError(
            f"answers file is not valid YAML/JSON: {exc}", source=str(file)
        ) from None
    return parse_answers(data, source=str(file))


def parse_answers(data: object, *, source: str = "<answers>") -> dict[str, str]:
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise PlaybookError(
            "answers must be a mapping of step id -> answer",
            source=source,
            remedy="write one `step_id: answer` line per step (docs/playbooks.md)",
        )
    answers: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(value, Mapping | list):
            raise PlaybookError(f"answer for step {key!r} must be text", source=source)
        answers[str(key)] = "" if value is None else yaml_text(value)
    return answers


class AnswersFileIO:
    """Answers every question from a prepared mapping; remembers what it was shown."""

    def __init__(self, answers: Mapping[str, str], *, source: str = "<answers>") -> None:
        self.answers = dict(answers)
        self.source = source
        self.shown: list[tuple[QueryStep, QueryResult]] = []

    @classmethod
    def from_file(cls, path: Path | str, *, playbook: Playbook | None = None) -> AnswersFileIO:
        answers_io = cls(load_answers(path), source=str(path))
        if playbook is not None:
            answers_io.check_playbook(playbook)
        return answers_io

    def check_playbook(self, playbook: Playbook) -> None:
        """Refuse answers for steps the playbook does not have (a typo would go unnoticed)."""
        known = {step.id for step in playbook.steps}
        unknown = sorted(set(self.answers) - known)
        if unknown:
            raise PlaybookError(
                f"answers for steps not in playbook {playbook.id!r}: {', '.join(unknown)}",
                source=self.source,
                remedy=f"its steps are: {', '.join(step.id for step in playbook.steps)}",
            )

    def show(self, step: QueryStep, result: QueryResult) -> None:
        self.shown.append((step, result))

    def ask(self, step: CheckStep | CloseStep, choices: tuple[str, ...]) -> str:
        if step.id not in self.answers:
            raise PlaybookError(
                f"no answer for step {step.id!r}",
                source=self.source,
                remedy=f"add `{step.id}: <one of {', '.join(choices)}>` to the answers file",
            )
        answer = self.answers[step.id]
        if answer not in choices:
            raise PlaybookError(
                f"answer {answer!r} for step {step.id!r} is not one of: {', '.join(choices)}",
                source=self.source,
            )
        return answer

    def note(self, step: NoteStep) -> str:
        if step.id not in self.answers and step.required:
            raise PlaybookError(
                f"no answer for required note step {step.id!r}",
                source=self.source,
                remedy=f"add `{step.id}: <text>` to the answers file",
            )
        return self.answers.get(step.id, "")
