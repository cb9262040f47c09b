"""Offline scanning and conversion: every input shape, routing, and the pySigma backends."""

from __future__ import annotations

import gzip
import json
import shutil
import zipfile
from pathlib import Path

import pytest

from agents.errors import InputError
from detections import RuleSet
from detections.convert import TARGETS, convert_rules
from detections.readers import iter_events
from detections.scan import scan_files
from tests.detections.conftest import SIGMA_ROOT, require_shared

CASE = "regression_data/rules/windows/process_creation/proc_creation_win_certutil_download"
RULE_ID = "19b08b1c-861d-4e75-a1ef-ea0c1baf202b"


def sample() -> tuple[Path, Path]:
    folder = require_shared(SIGMA_ROOT / CASE)
    return folder / f"{RULE_ID}.evtx", folder / f"{RULE_ID}.json"


def write_inputs(tmp_path: Path) -> dict[str, Path]:
    evtx, as_json = sample()
    event = json.loads(as_json.read_text(encoding="utf-8"))
    flat = next(iter_events(as_json))
    inputs = {
        "evtx": evtx,
        "json": as_json,
        "array": tmp_path / "array.json",
        "concatenated": tmp_path / "concat.json",
        "jsonl": tmp_path / "events.jsonl",
        "gzip": tmp_path / "events.jsonl.gz",
        "zip": tmp_path / "bundle.zip",
    }
    inputs["array"].write_text(json.dumps([event, flat]), encoding="utf-8")
    pretty = json.dumps(event, indent=2)
    inputs["concatenated"].write_text(pretty + "\n" + pretty, encoding="utf-8")
    inputs["jsonl"].write_text(json.dumps(flat) + "\n\n" + json.dumps(event) + "\n", "utf-8")
    inputs["gzip"].write_bytes(gzip.compress(inputs["jsonl"].read_bytes()))
    with zipfile.ZipFile(inputs["zip"], "w") as archive:
        archive.write(evtx, "logs/a.evtx")
        archive.write(inputs["jsonl"], "logs/b.jsonl")
    return inputs


EXPECTED_EVENTS = {
    "evtx": 1, "json": 1, "array": 2, "concatenated": 2, "jsonl": 2, "gzip": 2, "zip": 3,
}  # fmt: skip


def test_every_input_shape_is_read(tmp_path: Path) -> None:
    for name, path in write_inputs(tmp_path).items():
        events = list(iter_events(path))
        assert len(events) == EXPECTED_EVENTS[name], name
        assert all(e["EventID"] == 1 and e["Image"].endswith("certutil.exe") for e in events)


def test_scan_reports_each_match(tmp_path: Path, sigma_corpus: RuleSet) -> None:
    inputs = write_inputs(tmp_path)
    seen: list[tuple[Path, int, bool]] = []
    matches = list(
        scan_files([], inputs.values(), ruleset=sigma_corpus, progress=lambda *a: seen.append(a))
    )
    hits = [m for m in matches if m.rule_id == RULE_ID]
    assert len(hits) == sum(EXPECTED_EVENTS.values())
    assert {Path(m.file.split("!")[0]).name for m in hits} >= {"array.json", "bundle.zip"}
    record = hits[0].to_dict()
    assert record["rule_title"] and record["event"]["EventID"] == 1
    json.dumps(record)  # one JSON object per match for --format jsonl
    assert [finished for *_, finished in seen].count(True) == len(inputs)


def test_scan_with_rule_paths(tmp_path: Path) -> None:
    rule = next(
        SIGMA_ROOT.glob("rules/windows/process_creation/proc_creation_win_certutil_download.yml")
    )
    shutil.copy(rule, tmp_path / rule.name)
    evtx, _ = sample()
    (match,) = scan_files([tmp_path], [evtx])
    assert match.rule_id == RULE_ID and match.index == 0


def test_bad_input_is_an_error_with_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"EventID": 1}\n{"broken": \n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        list(iter_events(bad))
    assert caught.value.source == str(bad)
    scalar = tmp_path / "scalar.json"
    scalar.write_text("42", encoding="utf-8")
    with pytest.raises(InputError):
        list(iter_events(scalar))


def test_empty_file_has_no_events(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n  \n", encoding="utf-8")
    assert list(iter_events(empty)) == []


@pytest.mark.parametrize("target", TARGETS)
def test_convert_offline(target: str) -> None:
    from detections import default_rules_dir

    rule = SIGMA_ROOT / "rules/windows/process_creation/proc_creation_win_certutil_download.yml"
    converted = convert_rules([default_rules_dir(), rule], target)  # type: ignore[arg-type]
    assert len(converted) >= 15
    windows = converted[-1]
    assert windows.rule_id == RULE_ID and windows.error is None and windows.queries
    assert "certutil" in windows.queries[0].lower()
    errors = [c for c in converted if c.error]
    # EQL cannot express |exists: false (one shipped rule); every other target converts all.
    assert len(errors) == (1 if target == "eql" else 0), [c.error for c in errors]
