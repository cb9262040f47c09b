"""Run a playbook against an alert, recording every step in the hash-chained triage ledger.

Order of effects: the alert goes ``in_progress`` and a ``start`` record names the playbook
(id, version, sha256); each step appends one record (who, when, what) as it completes; a close
appends a ``close`` record and then sets the alert ``closed`` with the resolution. If the run
is aborted (an error, Ctrl-C), the records made so far stay, an ``abort`` record is appended
when the store still accepts it, the exception propagates, and the alert stays in_progress.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from agents.errors import NotFoundError, PlaybookError, SekimoriError
from agents.schema import to_iso
from collector.models import Alert, Resolution, TriageRecord
from collector.store.base import Store
from playbooks.model import (
    CheckStep,
    CloseStep,
    NoteStep,
    Playbook,
    QueryStep,
    Step,
    target_resolution,
)
from playbooks.queries import QueryResult, run_query
from playbooks.triage_io import TriageIO

MAX_RECORDED_IDS: Final = 200
MAX_NOTE_CHARS: Final = 10_000
START_STEP: Final = "@start"  # step ids are [a-z0-9_], so "@..." never collides
CLOSE_STEP: Final = "@close"  # a close reached through a check's `close:<resolution>` target

Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class TriageOutcome:
    alert: Alert  # as stored after the close
    playbook_id: str
    resolution: Resolution
    records: tuple[TriageRecord, ...]  # as stored: with seq and hashes
    answers: Mapping[str, str] = field(default_factory=dict)  # step id -> answer or note
    path: tuple[str, ...] = ()  # step ids in the order they ran


def query_detail(step: QueryStep, result: QueryResult) -> dict[str, Any]:
    """What a query step records: the query, its window, counts and the event ids it saw."""
    ids = list(result.event_ids)
    return {
        "query": step.query,
        "window": step.window_text,
        "host": result.host,
        "since": to_iso(result.since),
        "until": to_iso(result.until),
        "event_count": len(ids),
        "event_ids": ids[:MAX_RECORDED_IDS],
        "truncated": result.truncated or len(ids) > MAX_RECORDED_IDS,
        **result.summary(),
    }


class _Run:
    def __init__(
        self, playbook: Playbook, alert: Alert, store: Store, io: TriageIO, actor: str, clock: Clock
    ) -> None:
        self.playbook = playbook
        self.alert = alert
        self.store = store
        self.io = io
        self.actor = actor
        self.clock = clock
        self.records: list[TriageRecord] = []
        self.answers: dict[str, str] = {}
        self.path: list[str] = []

    def record(self, step_id: str, kind: str, detail: dict[str, Any]) -> None:
        record = TriageRecord(
            alert_id=self.alert.id,
            playbook_id=self.playbook.id,
            step_id=step_id,
            kind=kind,
            actor=self.actor,
            at=self.clock(),
            detail=detail,
        )
        self.records.append(self.store.append_triage(record))

    def choose(self, step: CheckStep | CloseStep, choices: tuple[str, ...]) -> str:
        answer = self.io.ask(step, choices)
        if answer not in choices:
            raise PlaybookError(
                f"step {step.id!r}: answer {answer!r} is not one of: {', '.join(choices)}",
                source=self.playbook.source,
            )
        self.answers[step.id] = answer
        return answer

    def execute(self, step: Step) -> str | None:
        """Run one step; return its explicit target (or None to go on to the next step)."""
        self.path.append(step.id)
        if isinstance(step, QueryStep):
            result = run_query(step, self.alert, self.store)
            self.io.show(step, result)
            self.record(step.id, "query", query_detail(step, result))
            return step.next
        if isinstance(step, CheckStep):
            answer = self.choose(step, step.choices)
            target = step.target(answer)
            detail = {"question": step.question, "choices": list(step.choices), "answer": answer}
            self.record(step.id, "check", {**detail, "next": target})
            return target
        if isinstance(step, NoteStep):
            text = self.io.note(step).strip()
            if step.required and not text:
                raise PlaybookError(
                    f"step {step.id!r}: a note is required", source=self.playbook.source
                )
            text = text[:MAX_NOTE_CHARS]
            self.answers[step.id] = text
            self.record(step.id, "note", {"prompt": step.prompt, "text": text})
            return step.next
        return self.close_step(step)

    def close_step(self, step: CloseStep) -> str:
        if step.resolution is not None:
            resolution = step.resolution
            detail: dict[str, Any] = {"resolution": resolution, "chosen_by": "playbook"}
        else:
            resolution = _resolution(self.choose(step, tuple(step.choices)))
            detail = {"resolution": resolution, "chosen_by": "analyst", "question": step.question}
        self.record(step.id, "close", detail)
        return f"close:{resolution}"

    def run(self) -> Resolution:
        steps = self.playbook.steps
        index = 0
        while True:
            step = steps[index]
            target = self.execute(step)
            if target is not None and (resolution := target_resolution(target)) is not None:
                if not isinstance(step, CloseStep):
                    self.record(CLOSE_STEP, "close", {"resolution": resolution, "via": step.id})
                return resolution
            following = self.playbook.index(target) if target is not None else index + 1
            if following <= index or following >= len(steps):
                raise PlaybookError(
                    f"step {step.id!r}: the run cannot continue to step #{following + 1}",
                    source=self.playbook.source,
                    remedy="load playbooks through playbooks.loader so their flow is validated",
                )
            index = following


def _resolution(text: str) -> Resolution:
    resolution = target_resolution(f"close:{text}")
    if resolution is None:  # pragma: no cover - target_resolution raises first
        raise PlaybookError(f"bad resolution {text!r}")
    return resolution


def run_playbook(
    playbook: Playbook,
    alert: Alert,
    store: Store,
    io: TriageIO,
    actor: str,
    *,
    clock: Clock = _utc_now,
) -> TriageOutcome:
    """Triage ``alert`` with ``playbook``; every step is recorded as ``actor``.

    Raises PlaybookError (bad answer, missing required note, closed alert, empty actor),
    NotFoundError (alert not in the store) or whatever the store/IO raises; on any of these
    after the start, the alert stays in_progress with the records made so far.
    """
    actor = actor.strip()
    if not actor:
        raise PlaybookError("an actor name is required", remedy="pass --as NAME")
    current = store.get_alert(alert.id)
    if current is None:
        raise NotFoundError(f"no alert with id {alert.id!r}", remedy="sekimori alerts list")
    if current.status == "closed":
        raise PlaybookError(
            f"alert {alert.id!r} is already closed ({current.resolution})",
            remedy="pick an open or in-progress alert: sekimori alerts list --status open",
        )
    run = _Run(playbook, current, store, io, actor, clock)
    store.set_alert_status(current.id, "in_progress", None)
    run.record(
        START_STEP,
        "start",
        {
            "playbook_title": playbook.title,
            "playbook_version": playbook.version,
            "playbook_sha256": playbook.sha256,
            "rule_id": current.rule_id,
            "previous_status": current.status,
            "status": "in_progress",
        },
    )
    try:
        resolution = run.run()
        closed = store.set_alert_status(current.id, "closed", resolution)
    except BaseException as exc:
        _record_abort(run, exc)
        raise
    return TriageOutcome(
        alert=closed,
        playbook_id=playbook.id,
        resolution=resolution,
        records=tuple(run.records),
        answers=dict(run.answers),
        path=tuple(run.path),
    )


def _record_abort(run: _Run, exc: BaseException) -> None:
    step_id = run.path[-1] if run.path else START_STEP
    reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else type(exc).__name__
    try:
        run.record(step_id, "abort", {"reason": reason, "message": str(exc)[:500]})
    except SekimoriError as secondary:  # the store itself may be what failed
        exc.add_note(f"the abort could not be recorded either: {secondary}")
