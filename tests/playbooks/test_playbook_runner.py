"""Unattended triage runs against a real SqliteStore: records, hash chain, alert status."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.errors import NotFoundError, PlaybookError
from collector.ledger import verify_triage_chain
from collector.models import Alert
from collector.store.sqlite import SqliteStore
from playbooks.loader import builtin_content_dir, load_playbook
from playbooks.model import CheckStep, CloseStep, NoteStep, Playbook, QueryStep
from playbooks.queries import ProcessTreeResult, QueryResult
from playbooks.runner import run_playbook
from playbooks.triage_io import AnswersFileIO, load_answers
from tests.playbooks.conftest import C2, HOST

NOW = datetime(2026, 11, 26, 1, 30, tzinfo=UTC)

MALICIOUS = {
    "sanctioned": "no",
    "user_known": "yes",
    "payload": "malicious",
    "contained": "isolated",
    "escalate": "escalated",
    "findings": "curl|sh fetched x.sh which started an nc reverse shell to 198.51.100.23:4444.",
    "resolve": "true_positive",
}


@pytest.fixture
def playbook() -> Playbook:
    return load_playbook(builtin_content_dir() / "linux_execution.yaml")


def ticking_clock() -> Callable[[], datetime]:
    counter = itertools.count()
    return lambda: NOW + timedelta(seconds=next(counter))


def test_unattended_run_records_every_step_and_closes(
    seeded: tuple[SqliteStore, Alert], playbook: Playbook
) -> None:
    store, alert = seeded
    io = AnswersFileIO(MALICIOUS)
    outcome = run_playbook(playbook, alert, store, io, "suzuki", clock=ticking_clock())

    records = store.triage_records(alert_id=alert.id)
    assert [r.step_id for r in records] == [
        "@start",
        "tree",
        "connections",
        "contacted_before",
        "sanctioned",
        "user_known",
        "payload",
        "contained",
        "escalate",
        "findings",
        "resolve",
    ]
    assert [r.kind for r in records][:5] == ["start", "query", "query", "query", "check"]
    assert records[-1].kind == "close"
    assert {r.actor for r in records} == {"suzuki"}
    assert {r.playbook_id for r in records} == {"linux-execution"}
    assert [r.at for r in records] == [NOW + timedelta(seconds=i) for i in range(len(records))]
    assert [r.seq for r in records] == list(range(1, len(records) + 1))
    assert verify_triage_chain(store.triage_records()) == []
    assert outcome.records == tuple(records)

    start = records[0].detail
    assert start["playbook_version"] == 1
    assert start["playbook_sha256"] == playbook.sha256
    assert len(playbook.sha256) == 64
    assert start["previous_status"] == "open"

    tree = records[1].detail
    assert tree["query"] == "process_tree"
    assert tree["window"] == "10m"
    assert tree["counts"] == {"ancestors": 3, "alert_processes": 1, "descendants": 3}
    assert tree["event_count"] == 6 and len(tree["event_ids"]) == 6
    conns = records[2].detail
    assert conns["counts"] == {"network_connection": 3}
    assert f"{C2}:4444" in conns["destinations"]
    assert records[3].detail["prior_contacts"] == {C2: 1}
    check = records[4].detail
    assert check["answer"] == "no" and check["choices"] == ["yes", "no", "unsure"]
    assert "作業申請" in check["question"]
    assert records[9].detail["text"].startswith("curl|sh fetched x.sh")
    assert records[-1].detail == {
        "resolution": "true_positive",
        "chosen_by": "analyst",
        "question": "Resolution?",
    }

    final = store.get_alert(alert.id)
    assert final is not None
    assert (final.status, final.resolution) == ("closed", "true_positive")
    assert outcome.alert == final
    assert outcome.resolution == "true_positive"
    assert outcome.answers["payload"] == "malicious"
    assert [step.id for step, _ in io.shown] == ["tree", "connections", "contacted_before"]
    assert isinstance(io.shown[0][1], ProcessTreeResult)


def test_sanctioned_branch_skips_to_the_ticket_and_closes_benign(
    seeded: tuple[SqliteStore, Alert], playbook: Playbook
) -> None:
    store, alert = seeded
    answers = {"sanctioned": "yes", "ticket": "作業申請 2026-1187: vendor installed the agent"}
    outcome = run_playbook(playbook, alert, store, AnswersFileIO(answers), "suzuki")
    assert outcome.path == (
        "tree",
        "connections",
        "contacted_before",
        "sanctioned",
        "ticket",
        "sanctioned_close",
    )
    assert outcome.resolution == "benign"
    last = store.triage_records()[-1]
    assert (last.step_id, last.detail) == (
        "sanctioned_close",
        {"resolution": "benign", "chosen_by": "playbook"},
    )
    closed = store.get_alert(alert.id)
    assert closed is not None and closed.resolution == "benign"


def test_a_close_target_records_an_explicit_close(
    seeded: tuple[SqliteStore, Alert], playbook: Playbook
) -> None:
    store, alert = seeded
    answers = {**MALICIOUS, "payload": "harmless_misfire", "misfire": "base64 in ansible args"}
    outcome = run_playbook(playbook, alert, store, AnswersFileIO(answers), "suzuki")
    records = store.triage_records()
    assert [r.step_id for r in records[-2:]] == ["misfire", "@close"]
    assert records[-1].detail == {"resolution": "false_positive", "via": "misfire"}
    assert outcome.resolution == "false_positive"
    assert verify_triage_chain(records) == []


def _assert_aborted(store: SqliteStore, alert: Alert, step: str, recorded: list[str]) -> None:
    records = store.triage_records(alert_id=alert.id)
    assert [r.step_id for r in records[:-1]] == recorded
    assert (records[-1].kind, records[-1].step_id) == ("abort", step)
    assert verify_triage_chain(store.triage_records()) == []
    current = store.get_alert(alert.id)
    assert current is not None
    assert (current.status, current.resolution) == ("in_progress", None)


def test_missing_answer_names_the_step_and_leaves_the_alert_in_progress(
    seeded: tuple[SqliteStore, Alert], playbook: Playbook
) -> None:
    store, alert = seeded
    answers = {k: v for k, v in MALICIOUS.items() if k != "contained"}
    with pytest.raises(PlaybookError, match="no answer for step 'contained'") as info:
        run_playbook(playbook, alert, store, AnswersFileIO(answers, source="ans.yaml"), "suzuki")
    assert info.value.source == "ans.yaml"
    assert "contained:" in (info.value.remedy or "")
    _assert_aborted(
        store,
        alert,
        "contained",
        [
            "@start",
            "tree",
            "connections",
            "contacted_before",
            "sanctioned",
            "user_known",
            "payload",
        ],
    )


def test_answer_not_among_the_choices_names_the_step(
    seeded: tuple[SqliteStore, Alert], playbook: Playbook
) -> None:
    store, alert = seeded
    answers = {**MALICIOUS, "sanctioned": "maybe"}
    with pytest.raises(PlaybookError, match="'maybe' for step 'sanctioned' is not one of: yes, no"):
        run_playbook(playbook, alert, store, AnswersFileIO(answers), "suzuki")
    _assert_aborted(
        store, alert, "sanctioned", ["@start", "tree", "connections", "contacted_before"]
    )


def test_bad_resolution_answer_fails_at_the_close_step(
    seeded: tuple[SqliteStore, Alert], playbook: Playbook
) -> None:
    store, alert = seeded
    with pytest.raises(PlaybookError, match="step 'resolve'"):
        run_playbook(playbook, alert, store, AnswersFileIO({**MALICIOUS, "resolve": "fixed"}), "a")
    current = store.get_alert(alert.id)
    assert current is not None and current.status == "in_progress"


class InterruptingIO(AnswersFileIO):
    """Answers from a mapping, then the analyst presses Ctrl-C at ``stop_at``."""

    def __init__(self, answers: dict[str, str], stop_at: str) -> None:
        super().__init__(answers)
        self.stop_at = stop_at

    def ask(self, step: CheckStep | CloseStep, choices: tuple[str, ...]) -> str:
        if step.id == self.stop_at:
            raise KeyboardInterrupt
        return super().ask(step, choices)


def test_ctrl_c_leaves_records_and_the_alert_in_progress(
    seeded: tuple[SqliteStore, Alert], playbook: Playbook
) -> None:
    store, alert = seeded
    with pytest.raises(KeyboardInterrupt):
        run_playbook(playbook, alert, store, InterruptingIO(MALICIOUS, "escalate"), "suzuki")
    _assert_aborted(
        store,
        alert,
        "escalate",
        [
            "@start",
            "tree",
            "connections",
            "contacted_before",
            "sanctioned",
            "user_known",
            "payload",
            "contained",
        ],
    )
    assert store.triage_records()[-1].detail["reason"] == "interrupted"
    # a second analyst can pick the in-progress alert up again
    outcome = run_playbook(playbook, alert, store, AnswersFileIO(MALICIOUS), "sato")
    assert outcome.alert.status == "closed"
    assert verify_triage_chain(store.triage_records()) == []


class SilentIO:
    """An interactive IO whose analyst just presses Enter at every note."""

    def show(self, step: QueryStep, result: QueryResult) -> None:
        return None

    def ask(self, step: CheckStep | CloseStep, choices: tuple[str, ...]) -> str:
        return "no" if "no" in choices else choices[0]

    def note(self, step: NoteStep) -> str:
        return "   "


def test_an_empty_required_note_fails_naming_the_step(
    seeded: tuple[SqliteStore, Alert], playbook: Playbook
) -> None:
    store, alert = seeded
    with pytest.raises(PlaybookError, match="step 'findings': a note is required"):
        run_playbook(playbook, alert, store, SilentIO(), "suzuki")


def test_closed_alerts_unknown_alerts_and_empty_actors_are_refused(
    seeded: tuple[SqliteStore, Alert], playbook: Playbook
) -> None:
    store, alert = seeded
    with pytest.raises(PlaybookError, match="actor"):
        run_playbook(playbook, alert, store, AnswersFileIO(MALICIOUS), "  ")
    run_playbook(playbook, alert, store, AnswersFileIO(MALICIOUS), "suzuki")
    count = len(store.triage_records())
    with pytest.raises(PlaybookError, match="already closed"):
        run_playbook(playbook, alert, store, AnswersFileIO(MALICIOUS), "suzuki")
    assert len(store.triage_records()) == count
    with pytest.raises(NotFoundError):
        run_playbook(playbook, replace(alert, id="nope"), store, AnswersFileIO(MALICIOUS), "x")


def test_answers_files_in_yaml_and_json(tmp_path: Path, playbook: Playbook) -> None:
    yaml_file = tmp_path / "answers.yaml"
    # unquoted yes/no are YAML booleans: they still mean the choices "yes" and "no"
    yaml_file.write_text(
        "sanctioned: no\nuser_known: yes\nfindings: |\n  複数行の\n  メモ\n", encoding="utf-8"
    )
    assert load_answers(yaml_file) == {
        "sanctioned": "no",
        "user_known": "yes",
        "findings": "複数行の\nメモ\n",
    }
    json_file = tmp_path / "answers.json"
    json_file.write_text(json.dumps(MALICIOUS), encoding="utf-8")
    io = AnswersFileIO.from_file(json_file, playbook=playbook)
    assert io.answers == MALICIOUS
    assert io.source == str(json_file)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "mapping of step id"),
        ("sanctioned: [yes]\n", "answer for step 'sanctioned' must be text"),
        ("sanctioned: no\nsanctionned: yes\n", "not in playbook 'linux-execution': sanctionned"),
        ("sanctioned: 'no\n", "not valid YAML"),
    ],
)
def test_bad_answers_files_are_refused(
    tmp_path: Path, playbook: Playbook, text: str, message: str
) -> None:
    file = tmp_path / "answers.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(PlaybookError, match=message) as info:
        AnswersFileIO.from_file(file, playbook=playbook)
    assert info.value.source == str(file)


def test_a_missing_answers_file_is_a_playbook_error(tmp_path: Path) -> None:
    with pytest.raises(PlaybookError, match="cannot read answers"):
        load_answers(tmp_path / "nope.yaml")


def test_every_run_appends_to_one_global_chain(
    seeded: tuple[SqliteStore, Alert], playbook: Playbook
) -> None:
    store, alert = seeded
    second = replace(alert, id="al-0002")
    store.upsert_alert(second)
    run_playbook(playbook, alert, store, AnswersFileIO(MALICIOUS), "suzuki")
    run_playbook(
        playbook, second, store, AnswersFileIO({"sanctioned": "yes", "ticket": "t"}), "sato"
    )
    records = store.triage_records()
    assert {r.alert_id for r in records} == {"al-0001", "al-0002"}
    assert verify_triage_chain(records) == []
    assert HOST in str(records[1].detail["host"])
