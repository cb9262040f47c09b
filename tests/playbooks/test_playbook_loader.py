"""Loader validation: every broken playbook gets a clear error; good ones still load."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from agents.errors import PlaybookError
from playbooks.loader import load_playbook, load_playbooks, parse_playbook
from playbooks.model import CheckStep, CloseStep, NoteStep, QueryStep, parse_duration

GOOD = """\
id: sample
title: Sample
description: A small but complete playbook.
version: 2
applies_to:
  tags: [attack.execution]
steps:
  - id: tree
    kind: query
    query: process_tree
    window: 15m
    max_depth: 4
  - id: sanctioned
    kind: check
    question: Sanctioned?
    choices: ["yes", "no"]
    next:
      "yes": close:benign
  - id: findings
    kind: note
    prompt: What happened?
    required: true
  - id: resolve
    kind: close
    choices: [true_positive, false_positive]
"""


def broken(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


def test_a_good_playbook_loads_with_typed_steps() -> None:
    playbook = parse_playbook(GOOD, source="sample.yaml")
    assert (playbook.id, playbook.version, playbook.source) == ("sample", 2, "sample.yaml")
    assert playbook.applies_to.tags == ("attack.execution",)
    tree, check, note, close = playbook.steps
    assert isinstance(tree, QueryStep)
    assert (tree.window, tree.window_text, tree.max_depth) == (timedelta(minutes=15), "15m", 4)
    assert isinstance(check, CheckStep)
    assert check.target("yes") == "close:benign"
    assert check.target("no") is None
    assert isinstance(note, NoteStep) and note.required
    assert isinstance(close, CloseStep)
    assert (close.resolution, close.choices) == (None, ("true_positive", "false_positive"))
    assert len(playbook.sha256) == 64


def test_defaults_when_optional_keys_are_left_out() -> None:
    playbook = parse_playbook(
        broken("    window: 15m\n    max_depth: 4\n", "").replace(
            "    choices: [true_positive, false_positive]\n", ""
        )
    )
    tree = playbook.steps[0]
    assert isinstance(tree, QueryStep) and tree.window == timedelta(minutes=10)
    close = playbook.steps[-1]
    assert isinstance(close, CloseStep)
    assert close.choices == ("true_positive", "false_positive", "benign")


CASES = {
    "unknown top-level key": (
        broken("version: 2\n", "version: 2\nauthor: me\n"),
        "unknown key 'author' in the playbook",
        5,
    ),
    "unknown step key": (
        broken("    max_depth: 4\n", "    max_depth: 4\n    timeout: 5\n"),
        "step 'tree' (steps[0].timeout): unknown key 'timeout' in a query step",
        13,
    ),
    "unknown step kind": (
        broken("kind: note", "kind: notify"),
        "step 'findings' (steps[2].kind): unknown step kind 'notify'",
        20,
    ),
    "unknown query": (
        broken("query: process_tree", "query: process_graph"),
        "unknown query 'process_graph'",
        10,
    ),
    "duplicate step id": (
        broken("  - id: findings", "  - id: sanctioned"),
        "step 'sanctioned' (steps[2].id): duplicate step id 'sanctioned' (first used by steps[1])",
        19,
    ),
    "next target missing": (
        broken('"yes": close:benign', '"yes": ticket'),
        "step 'sanctioned' (steps[1].next.yes): next target 'ticket' does not exist",
        18,
    ),
    "next jumps backwards": (
        broken('"yes": close:benign', '"yes": tree'),
        "next target 'tree' jumps backwards",
        18,
    ),
    "bad duration": (
        broken("window: 15m", "window: 15 minutes"),
        "step 'tree' (steps[0].window): bad duration '15 minutes'",
        11,
    ),
    "too long a duration": (broken("window: 15m", "window: 365d"), "maximum of 90d", 11),
    "bad fixed resolution": (
        broken("    choices: [true_positive, false_positive]\n", "    resolution: solved\n"),
        "step 'resolve' (steps[3].resolution): bad resolution 'solved'",
        25,
    ),
    "bad close target": (
        broken('"yes": close:benign', '"yes": close:ok'),
        "bad resolution 'ok'",
        18,
    ),
    "next names a missing choice": (
        broken('"yes": close:benign', '"maybe": close:benign'),
        "next names choice 'maybe' that is not among the choices",
        18,
    ),
    "unquoted yes in choices": (
        broken('choices: ["yes", "no"]', "choices: [yes, no]"),
        "reads as a boolean in YAML: quote it ('yes')",
        16,
    ),
    "one choice": (broken('choices: ["yes", "no"]', 'choices: ["yes"]'), "at least two", 16),
    "max_depth outside process_tree": (
        broken("query: process_tree", "query: host_events"),
        "max_depth applies only to the process_tree query",
        12,
    ),
    "both resolution and choices": (
        broken(
            "    choices: [true_positive, false_positive]\n",
            "    resolution: benign\n    choices: [benign, true_positive]\n",
        ),
        "either a fixed resolution or choices",
        23,
    ),
    "unreachable step": (
        broken("    required: true\n", "    required: true\n    next: close:true_positive\n"),
        "step 'resolve' (steps[3]): unreachable",
        24,
    ),
    "runs past the end": (
        broken(
            "  - id: resolve\n    kind: close\n    choices: [true_positive, false_positive]\n", ""
        ),
        "step 'findings' (steps[2]): the playbook can run past its last step",
        19,
    ),
    "missing steps": (GOOD.split("steps:", maxsplit=1)[0], "missing required key 'steps'", 1),
    "empty steps": (
        GOOD.split("steps:", maxsplit=1)[0] + "steps: []\n",
        "steps must be a non-empty list",
        7,
    ),
    "applies to nothing": (
        broken("  tags: [attack.execution]\n", "  tags: []\n"),
        "applies_to matches nothing",
        5,
    ),
    "bad version": (broken("version: 2", "version: two"), "version must be a whole number", 4),
    "bad playbook id": (broken("id: sample", "id: Sample Playbook"), "bad playbook id", 1),
    "not a mapping": ("- id: x\n", "a playbook must be a mapping, got list", 1),
    "duplicate yaml key": (
        broken("title: Sample\n", "title: Sample\ntitle: Again\n"),
        "duplicate key 'title' at title",
        3,
    ),
    "yaml syntax": (broken("version: 2\n", "version: [2\n"), "not valid YAML", 5),
    "note without prompt": (
        broken("    prompt: What happened?\n", ""),
        "missing required key 'prompt'",
        19,
    ),
}


@pytest.mark.parametrize(("text", "message", "line"), CASES.values(), ids=CASES.keys())
def test_broken_playbooks_name_file_step_line_and_problem(
    text: str, message: str, line: int
) -> None:
    with pytest.raises(PlaybookError) as info:
        parse_playbook(text, source="content/bad.yaml")
    error = info.value
    assert message in error.message
    assert error.source == "content/bad.yaml"
    assert error.line == line, str(error)
    assert str(error).startswith(f"content/bad.yaml:{line}: ")
    assert error.remedy
    assert error.exit_code == 5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("12m", None),
        ("30s", None),
        ("2h", None),
        ("7d", None),
        ("0m", "bad duration"),
        ("10", "bad duration"),
        ("-5m", "bad duration"),
        ("1w", "bad duration"),
        ("91d", "maximum"),
    ],
)
def test_parse_duration(text: str, problem: str | None) -> None:
    if problem is None:
        assert parse_duration(text) > timedelta(0)
    else:
        with pytest.raises(ValueError, match=problem):
            parse_duration(text)


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_a_directory_collects_every_bad_playbook_and_loads_the_good(tmp_path: Path) -> None:
    write(tmp_path, "a_good.yaml", GOOD)
    write(tmp_path, "b_good.yml", GOOD.replace("id: sample", "id: other"))
    write(tmp_path, "c_bad_kind.yaml", broken("kind: note", "kind: notify"))
    write(tmp_path, "d_bad_yaml.yaml", "id: [\n")
    write(tmp_path, "e_duplicate.yaml", GOOD)
    write(tmp_path, "notes.txt", "not a playbook")
    result = load_playbooks(tmp_path)
    assert [p.id for p in result.playbooks] == ["sample", "other"]
    assert not result.ok
    sources = [Path(e.source or "").name for e in result.errors]
    assert sources == ["c_bad_kind.yaml", "d_bad_yaml.yaml", "e_duplicate.yaml"]
    assert "unknown step kind 'notify'" in str(result.errors[0])
    assert "duplicate playbook id 'sample'" in str(result.errors[2])
    with pytest.raises(PlaybookError, match="notify"):
        load_playbooks(tmp_path, collect_errors=False)


def test_only_one_default_playbook(tmp_path: Path) -> None:
    default = broken("  tags: [attack.execution]\n", "  default: true\n")
    write(tmp_path, "a.yaml", default)
    write(tmp_path, "b.yaml", default.replace("id: sample", "id: sample2"))
    result = load_playbooks(tmp_path)
    assert [p.id for p in result.playbooks] == ["sample"]
    assert "a second default playbook" in str(result.errors[0])


def test_missing_paths_and_unreadable_files_are_errors(tmp_path: Path) -> None:
    result = load_playbooks(tmp_path / "nope")
    assert "no such playbook file or directory" in str(result.errors[0])
    with pytest.raises(PlaybookError, match="cannot read playbook"):
        load_playbook(tmp_path / "nope.yaml")
    binary = write(tmp_path, "bin.yaml", "")
    binary.write_bytes(b"id: \xff\xfe\n")
    with pytest.raises(PlaybookError, match="not UTF-8"):
        load_playbook(binary)
