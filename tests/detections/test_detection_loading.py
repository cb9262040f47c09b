"""Loading: broken rules are reported with file and problem, the rest still load; unsupported
logsources and correlation rules are reported as skipped, not silently dropped."""

from __future__ import annotations

import shutil
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sigma.rule import SigmaLogSource

from agents.errors import NotFoundError, RuleError
from detections import LogsourceRouter, RuleSet, default_rules_dir, load_rules
from tests.detections.conftest import make_event, rule_yaml

GOOD = {"sel": {"CommandLine|contains": "evil"}, "condition": "sel"}


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_broken_rules_are_collected_and_good_rules_still_load(tmp_path: Path) -> None:
    write(tmp_path / "a_good.yml", rule_yaml(GOOD, title="good one"))
    write(
        tmp_path / "b_malformed.yml",
        """\
        title: broken yaml
        id: 00000000-0000-4000-8000-000000000001
        detection:
          sel:
            CommandLine: [unclosed
          condition: sel
        """,
    )
    write(
        tmp_path / "nested" / "c_bad_modifier.yml",
        rule_yaml({"sel": {"CommandLine|containz": "x"}, "condition": "sel"}, title="bad mod"),
    )
    write(
        tmp_path / "d_bad_condition.yml",
        rule_yaml({"sel": {"CommandLine": "x"}, "condition": "sel and missing"}, title="bad cond"),
    )
    write(
        tmp_path / "e_bad_regex.yml",
        rule_yaml({"sel": {"CommandLine|re": "(unclosed"}, "condition": "sel"}, title="bad re"),
    )
    write(tmp_path / "f_not_a_mapping.yaml", "- just\n- a list\n")
    write(tmp_path / "z_good.yaml", rule_yaml(GOOD, title="good two"))
    write(tmp_path / "notes.txt", "not a rule")

    ruleset = load_rules([tmp_path])

    assert sorted(r.title for r in ruleset) == ["good one", "good two"]
    by_file = {Path(str(e.source)).name: e for e in ruleset.errors}
    assert set(by_file) == {
        "b_malformed.yml",
        "c_bad_modifier.yml",
        "d_bad_condition.yml",
        "e_bad_regex.yml",
        "f_not_a_mapping.yaml",
    }
    assert all(isinstance(e, RuleError) and e.remedy for e in ruleset.errors)
    assert "invalid YAML" in by_file["b_malformed.yml"].message
    assert by_file["b_malformed.yml"].line is not None
    assert str(by_file["b_malformed.yml"]).startswith(str(tmp_path / "b_malformed.yml") + ":")
    assert "containz" in by_file["c_bad_modifier.yml"].message
    assert "missing" in by_file["d_bad_condition.yml"].message
    assert "bad cond" in by_file["d_bad_condition.yml"].message
    assert by_file["d_bad_condition.yml"].line is not None
    assert "(unclosed" in by_file["e_bad_regex.yml"].message
    assert "not a mapping" in by_file["f_not_a_mapping.yaml"].message
    assert ruleset.match(make_event(process__command_line="very evil")) != []


def test_missing_path_and_duplicate_ids(tmp_path: Path) -> None:
    rule_id = str(uuid.uuid4())
    write(tmp_path / "one.yml", rule_yaml(GOOD, rule_id=rule_id, title="first"))
    write(tmp_path / "two.yml", rule_yaml(GOOD, rule_id=rule_id, title="second"))
    ruleset = load_rules([tmp_path, tmp_path / "nope"])
    assert [r.title for r in ruleset] == ["first"]
    messages = sorted(str(e) for e in ruleset.errors)
    assert any("duplicate id" in m and "two.yml" in m for m in messages)
    assert any("no such rule file" in m and "nope" in m for m in messages)


def test_rule_without_id_is_an_error(tmp_path: Path) -> None:
    write(
        tmp_path / "noid.yml",
        """\
        title: no id
        logsource: {category: process_creation, product: linux}
        detection: {sel: {CommandLine: x}, condition: sel}
        """,
    )
    ruleset = load_rules([tmp_path])
    assert len(ruleset) == 0
    (error,) = ruleset.errors
    assert "has no id" in error.message


def test_unsupported_logsources_are_reported(load_one: Callable[..., RuleSet]) -> None:
    cases = {
        "macos": {"category": "process_creation", "product": "macos"},
        "windows etw": {"category": "file_access", "product": "windows"},
        "service": {"product": "linux", "service": "auditd"},
        "category": {"category": "file_event", "product": "linux"},
        "no category": {"product": "linux"},
    }
    for name, logsource in cases.items():
        ruleset = load_one(GOOD, logsource=logsource, title=name)
        assert len(ruleset) == 0 and ruleset.errors == [], name
        (skipped,) = ruleset.skipped
        assert skipped.reason == "unsupported_logsource"
        assert skipped.title == name and skipped.rule_id
        assert "skipped (unsupported_logsource)" in str(skipped)
    macos = load_one(GOOD, logsource=cases["macos"]).skipped[0]
    assert "'macos'" in macos.detail
    etw = load_one(GOOD, logsource=cases["windows etw"]).skipped[0]
    assert "ETW" in etw.detail


def test_router_routes_our_categories() -> None:
    router = LogsourceRouter()
    assert router.route(SigmaLogSource("process_creation", "linux")).kinds == {"process_start"}
    assert router.route(SigmaLogSource("process_creation", None)).kinds == {"process_start"}
    assert router.route(SigmaLogSource("network_connection")).kinds == {"network_connection"}
    assert router.route(SigmaLogSource("network_listen", "linux")).kinds == {"network_listen"}
    assert "telemetry_gap" in router.route(SigmaLogSource("sekimori_telemetry")).kinds
    windows = router.route(SigmaLogSource("process_creation", "windows"))
    assert windows.supported and not windows.kinds
    assert windows.windows == {("microsoft-windows-sysmon/operational", 1), ("security", 4688)}
    security = router.route(SigmaLogSource(None, "windows", "security"))
    assert security.windows == {("security", None)}
    assert router.route(SigmaLogSource("image_load", "windows")).windows == {
        ("microsoft-windows-sysmon/operational", 7)
    }
    assert not router.route(SigmaLogSource(None, "windows", "no-such-service")).supported


def test_correlation_rules_are_loaded_and_silence_their_base_rule(tmp_path: Path) -> None:
    base_id = str(uuid.uuid4())
    write(
        tmp_path / "corr.yml",
        rule_yaml(GOOD, rule_id=base_id, title="base", name="base_rule")
        + textwrap.dedent(
            f"""\
            ---
            title: many evil
            id: {uuid.uuid4()}
            correlation:
              type: event_count
              rules: [{base_id}]
              group-by: [host.name]
              timespan: 5m
              condition: {{gte: 10}}
            """
        ),
    )
    ruleset = load_rules([tmp_path])
    assert ruleset.errors == []
    assert [r.title for r in ruleset] == ["base"]
    assert ruleset.skipped == []
    assert [c.title for c in ruleset.correlations] == ["many evil"]
    assert ruleset.silent == {base_id}  # no `generate: true`: the base rule only feeds it
    event = make_event(process__command_line="evil")
    assert [r.rule_id for r in ruleset.fired(event)] == [base_id]
    assert ruleset.match(event) == []


def test_sigma_filters_apply_across_files(tmp_path: Path) -> None:
    rule_id = str(uuid.uuid4())
    write(tmp_path / "rule.yml", rule_yaml(GOOD, rule_id=rule_id))
    write(
        tmp_path / "filter.yml",
        f"""\
        title: ignore the build user
        id: {uuid.uuid4()}
        logsource: {{category: process_creation, product: linux}}
        filter:
          rules: [{rule_id}]
          selection: {{User: runner}}
          condition: not selection
        """,
    )
    ruleset = load_rules([tmp_path])
    assert ruleset.errors == []
    assert ruleset.match(make_event(process__command_line="evil", user__name="alice"))
    assert not ruleset.match(make_event(process__command_line="evil", user__name="runner"))


def test_default_rules_dir_is_loadable_from_a_copy(tmp_path: Path) -> None:
    copy = tmp_path / "rules"
    shutil.copytree(default_rules_dir(), copy)
    ruleset = load_rules([copy])
    assert len(ruleset) >= 12 and ruleset.errors == []
    assert all(r.source.is_relative_to(copy) for r in ruleset)


def test_ruleset_lookup(tmp_path: Path) -> None:
    rule_id = str(uuid.uuid4())
    write(tmp_path / "r.yml", rule_yaml(GOOD, rule_id=rule_id))
    ruleset = load_rules([tmp_path / "r.yml"])
    assert rule_id in ruleset and ruleset.get(rule_id).rule_id == rule_id
    with pytest.raises(NotFoundError, match="no loaded rule"):
        ruleset.get("nope")
