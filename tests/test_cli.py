"""The CLI over a seeded store: output formats, exit codes, hostile strings."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli import cli
from collector.alerts import AlertManager
from collector.cli.common import parse_when
from collector.store.sqlite import SqliteStore
from detections import default_rules_dir, load_rules
from tests.conftest import build_event

HOSTILE = "[bold red]pwned[/] [/] \x1b[31m 関守"


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A store with one base64 alert on a host with a hostile name, plus a benign event."""
    store = SqliteStore(tmp_path / "sekimori.db")
    rules = load_rules([default_rules_dir()])
    alerts = AlertManager(store)
    events = [
        build_event(
            seq=1,
            host=HOSTILE,
            timestamp="2026-11-26T06:00:00.000000Z",
            process__executable="/usr/bin/dash",
            process__name="sh",
            process__command_line="sh -c 'echo aWQ= | base64 -d | sh'",
            process__args=["sh", "-c", "echo aWQ= | base64 -d | sh"],
        ),
        build_event(seq=2, host=HOSTILE, timestamp="2026-11-26T06:00:01.000000Z"),
    ]
    store.write_events(events)
    for event in events:
        for match in rules.match(event):
            alerts.record(match, event)
    store.close()
    return tmp_path


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def alert_id(data_dir: Path) -> str:
    code, out, _ = run("alerts", "list", "--data-dir", str(data_dir), "--json")
    assert code == 0
    (alert,) = json.loads(out)
    return str(alert["id"])


def test_alerts_list_and_show(data_dir: Path) -> None:
    code, out, _ = run("alerts", "list", "--data-dir", str(data_dir), "--json")
    (alert,) = json.loads(out)
    assert alert["title"] == "Base64-Decoded Payload Executed by a Shell"
    assert alert["host"] == HOSTILE
    code, out, _ = run("alerts", "list", "--data-dir", str(data_dir))
    assert code == 0
    assert "[bold red]pwned[/]" in out  # shown literally, not interpreted as markup
    code, out, _ = run("alerts", "show", alert["id"], "--data-dir", str(data_dir))
    assert code == 0
    assert "echo aWQ= | base64 -d | sh" in out
    code, out, _ = run("alerts", "show", alert["id"], "--data-dir", str(data_dir), "--json")
    assert json.loads(out)["events"][0]["process"]["pid"] == 4242


def test_unknown_alert_and_missing_store_exit_7_with_a_hint(data_dir: Path, tmp_path: Path) -> None:
    code, _, err = run("alerts", "show", "A-nope", "--data-dir", str(data_dir))
    assert code == 7
    assert "no alert with id 'A-nope'" in err
    assert "sekimori alerts list" in err
    code, _, err = run("alerts", "list", "--data-dir", str(tmp_path / "empty"))
    assert code == 7
    assert "sekimori up" in err


def test_timeline_formats(data_dir: Path) -> None:
    aid = alert_id(data_dir)
    code, out, _ = run("timeline", "--alert", aid, "--data-dir", str(data_dir), "--format", "json")
    rows = json.loads(out)
    assert [r["kind"] for r in rows] == ["event", "alert", "event"]
    code, out, _ = run(
        "timeline",
        "--host",
        HOSTILE,
        "--since",
        "2026-11-26T05:59:00Z",
        "--until",
        "2026-11-26T06:10:00Z",
        "--data-dir",
        str(data_dir),
        "--format",
        "csv",
    )
    assert code == 0
    parsed = list(csv.DictReader(io.StringIO(out)))
    assert len(parsed) == 3
    code, out, _ = run("timeline", "--alert", aid, "--data-dir", str(data_dir))
    assert code == 0
    assert "alert" in out
    code, _, err = run("timeline", "--data-dir", str(data_dir))
    assert code == 2
    assert "exactly one of --alert" in err


def test_unattended_triage_then_audit_verify_and_tamper(data_dir: Path, tmp_path: Path) -> None:
    aid = alert_id(data_dir)
    answers = tmp_path / "answers.yaml"
    answers.write_text("nonsense_step: yes\n")
    code, _, err = run("triage", aid, "--data-dir", str(data_dir), "--answers", str(answers))
    assert code == 5
    assert "nonsense_step" in err
    from playbooks.loader import load_builtin_playbooks
    from playbooks.selection import select_playbook

    store = SqliteStore(data_dir / "sekimori.db")
    alert = store.get_alert(aid)
    store.close()
    assert alert is not None
    playbook = select_playbook(alert, load_builtin_playbooks().playbooks)
    lines = []
    for step in playbook.steps:
        if step.kind == "check":
            lines.append(f"{step.id}: {json.dumps(step.choices[0])}")
        elif step.kind == "note":
            lines.append(f"{step.id}: reviewed by the CLI test")
        elif step.kind == "close" and step.resolution is None:
            lines.append(f"{step.id}: false_positive")
    answers.write_text("\n".join(lines) + "\n")
    code, out, err = run(
        "triage", aid, "--data-dir", str(data_dir), "--answers", str(answers), "--as", "carol"
    )
    assert code == 0, err
    assert "closed" in out
    code, out, _ = run("audit", "verify", "--data-dir", str(data_dir), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["problems"] == []
    assert report["records"] >= 3
    raw = sqlite3.connect(data_dir / "sekimori.db")
    raw.execute("UPDATE triage SET actor = 'mallory' WHERE seq = 2")
    raw.commit()
    raw.close()
    code, _, err = run("audit", "verify", "--data-dir", str(data_dir))
    assert code == 10
    assert "record 2: content does not match its hash" in err


def test_rules_validate_reports_broken_rules(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(
        (default_rules_dir() / "linux_execution" / "reverse_shell.yml").read_text()
    )
    (tmp_path / "broken.yml").write_text("title: x\ndetection: [unclosed\n")
    code, out, err = run("rules", "validate", str(tmp_path))
    assert code == 10
    assert "broken.yml" in err
    assert "1 rule(s) loaded, 1 error(s)" in out
    code, out, _ = run("rules", "test")
    assert code == 0
    assert " 0 failed" in out


def test_parse_when() -> None:
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    assert parse_when("30m", now=now) == now - timedelta(minutes=30)
    assert parse_when("7d", now=now) == now - timedelta(days=7)
    assert parse_when("now", now=now) == now
    assert parse_when("2026-11-26T06:00:00") == datetime(2026, 11, 26, 6, tzinfo=UTC)
    with pytest.raises(Exception, match="cannot read time"):
        parse_when("yesterday-ish")


def test_timeline_html_report_is_self_contained_and_escaped(data_dir: Path, tmp_path: Path) -> None:
    aid = alert_id(data_dir)
    out_file = tmp_path / "timeline.html"
    code, _, _ = run(
        "timeline",
        "--alert",
        aid,
        "--data-dir",
        str(data_dir),
        "--format",
        "html",
        "--output",
        str(out_file),
    )
    assert code == 0
    page = out_file.read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert "<svg" in page
    assert "<polygon" in page  # the alert mark
    assert "http" not in page.split("<svg", 1)[1]  # no external resources
    assert "<script" not in page
    hostile_host = build_event(seq=9, host="<script>alert(1)</script>")
    from collector.report import timeline_html
    from collector.timeline import TimelineEntry, summarise_event

    entry = TimelineEntry(
        at=datetime(2026, 11, 26, tzinfo=UTC),
        kind="alert",
        host="h",
        summary=summarise_event(hostile_host) + " <img src=x onerror=alert(1)>",
        ref="<b>",
    )
    html = timeline_html("<t>", [entry])
    assert "<img" not in html
    assert "&lt;img src=x" in html


def test_rules_scan_and_convert(tmp_path: Path) -> None:
    samples = json.loads(
        (default_rules_dir() / "linux_execution" / "reverse_shell.samples.json").read_text()
    )
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join(json.dumps(e) for e in samples["match"] + samples["nomatch"]))
    code, out, _ = run("rules", "scan", "--format", "jsonl", str(log))
    assert code == 0
    hits = [json.loads(line) for line in out.splitlines()]
    assert len(hits) == len(samples["match"])
    assert {h["rule_title"] for h in hits} == {"Reverse Shell Command Line"}
    code, out, _ = run(
        "rules",
        "convert",
        "--target",
        "sqlite",
        "--json",
        str(default_rules_dir() / "linux_credential"),
    )
    assert code == 0
    (converted,) = json.loads(out)
    assert converted["error"] is None
    assert "shadow" in converted["queries"][0]


def test_hunt_finds_what_streaming_found(data_dir: Path) -> None:
    code, out, _ = run(
        "hunt",
        "--since",
        "2026-11-26T05:00:00Z",
        "--until",
        "2026-11-26T07:00:00Z",
        "--data-dir",
        str(data_dir),
        "--json",
    )
    assert code == 0
    report = json.loads(out)
    assert report["matches"] == 1
    assert report["new_alerts"] == 0  # streaming already raised it: same alert id
    assert report["already_known"] == 1


def test_tokens_agents_and_revocation(tmp_path: Path) -> None:
    code, out, _ = run("collector", "init", "--data-dir", str(tmp_path))
    assert code == 0
    assert (tmp_path / "ca.pem").exists()
    code, out, _ = run("token", "create", "--ttl", "10m", "--data-dir", str(tmp_path))
    assert code == 0
    assert len(out.strip()) >= 32
    code, out, _ = run("agents", "list", "--data-dir", str(tmp_path), "--json")
    assert (code, json.loads(out)) == (0, [])
    code, _, err = run("agent", "revoke", "nobody", "--data-dir", str(tmp_path))
    assert code == 7
    assert "no enrolled agent 'nobody'" in err


def test_ingest_workers_option() -> None:
    from collector.cli.service import MAX_AUTO_WORKERS, auto_workers

    assert auto_workers(1) == 0  # a worker on one core would only add copying
    assert auto_workers(2) == 2
    assert auto_workers(64) == MAX_AUTO_WORKERS
    for bad in ("99", "-1", "two", "\u00b2", "1e3"):
        result = CliRunner().invoke(cli, ["collector", "run", "--ingest-workers", bad])
        assert result.exit_code == 2
        assert "not a number from 0 to 64 or 'auto'" in result.output
