"""Sigma value, modifier and condition semantics of the streaming engine (positive and negative)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from detections import RuleSet
from tests.detections.conftest import RuleFactory, make_event


def check(compile_rule: RuleFactory, selection: dict[str, Any], event: dict[str, Any]) -> bool:
    rule = compile_rule({"sel": selection, "condition": "sel"})
    return rule.matches(event)


CMD = "process__command_line"


STRING_CASES: list[tuple[dict[str, Any], str, bool]] = [
    # plain strings: whole-value, case-insensitive
    ({"CommandLine": "Whoami"}, "whoami", True),
    ({"CommandLine": "whoami"}, "whoami /all", False),
    # wildcards and escapes
    ({"CommandLine": "who*"}, "whoami", True),
    ({"CommandLine": "*ami"}, "WHOAMI", True),
    ({"CommandLine": "w?oami"}, "whoami", True),
    ({"CommandLine": "w?oami"}, "wooooami", False),
    ({"CommandLine": "a*b*c"}, "aXXbYYc", True),
    ({"CommandLine": "a*b*c"}, "aXXcYYb", False),
    ({"CommandLine": r"what\?"}, "what?", True),
    ({"CommandLine": r"what\?"}, "whatX", False),
    ({"CommandLine": r"star\*"}, "star*", True),
    ({"CommandLine": r"star\*"}, "starfish", False),
    ({"CommandLine": r"C:\Windows\*"}, "c:\\windows*", True),
    ({"CommandLine": r"C:\Windows\*"}, r"c:\windows\x", False),
    ({"CommandLine": r"C:\Windows\\*"}, r"c:\windows\x", True),
    ({"CommandLine": "*"}, "", True),
    # contains / startswith / endswith
    ({"CommandLine|contains": "/etc/SHADOW"}, "cat /etc/shadow", True),
    ({"CommandLine|contains": "/etc/shadow"}, "cat /etc/passwd", False),
    ({"CommandLine|startswith": "cat "}, "cat x", True),
    ({"CommandLine|startswith": "cat "}, "concat x", False),
    ({"CommandLine|endswith": ".sh"}, "run.SH", True),
    ({"CommandLine|endswith": ".sh"}, "run.sh.bak", False),
    ({"CommandLine|contains": "a*c"}, "xxabbbcxx", True),
    # value lists: OR, AND with |all
    ({"CommandLine|contains": ["nmap", "masscan"]}, "masscan -p1", True),
    ({"CommandLine|contains": ["nmap", "masscan"]}, "zmap", False),
    ({"CommandLine|contains|all": ["socket", "connect"]}, "socket(); connect()", True),
    ({"CommandLine|contains|all": ["socket", "connect"]}, "socket() only", False),
    ({"CommandLine": ["a", "b", "c*"]}, "C++", True),
    ({"CommandLine": ["a", "b", "c*"]}, "d", False),
    # |cased
    ({"CommandLine|cased": "Whoami"}, "Whoami", True),
    ({"CommandLine|cased": "Whoami"}, "whoami", False),
    ({"CommandLine|contains|cased": "EVIL"}, "an evil thing", False),
    # regular expressions: unanchored search, case-sensitive unless |i
    ({"CommandLine|re": r"base64\s+-d"}, "echo x | base64  -d | sh", True),
    ({"CommandLine|re": r"base64\s+-d"}, "BASE64 -d", False),
    ({"CommandLine|re|i": r"base64\s+-d"}, "BASE64 -d", True),
    ({"CommandLine|re": r"^a.b$"}, "a\nb", False),
    ({"CommandLine|re|s": r"^a.b$"}, "a\nb", True),
    ({"CommandLine|re": r"^b$"}, "a\nb", False),
    ({"CommandLine|re|m": r"^b$"}, "a\nb", True),
    # base64 / base64offset
    ({"CommandLine|base64": "id"}, "aWQ=", True),
    ({"CommandLine|base64|contains": "id"}, "echo aWQ= | base64 -d", True),
    ({"CommandLine|base64|contains": "id"}, "echo aGVsbG8=", False),
    ({"CommandLine|base64offset|contains": "/bin/sh"}, "x L2Jpbi9zaA== y", True),
    ({"CommandLine|base64offset|contains": "/bin/sh"}, "eCAvYmluL3No", True),  # "x /bin/sh"
    ({"CommandLine|base64offset|contains": "/bin/sh"}, "bm90aGluZw==", False),
    # windash
    ({"CommandLine|windash|contains": " -enc "}, "powershell /enc abc", True),
    ({"CommandLine|windash|contains": " -enc "}, "powershell +enc abc", False),
]


@pytest.mark.parametrize(("selection", "value", "expected"), STRING_CASES)
def test_string_modifiers(
    compile_rule: RuleFactory, selection: dict[str, Any], value: str, expected: bool
) -> None:
    assert check(compile_rule, selection, make_event(**{CMD: value})) is expected


def test_windash_expands_dash_forms(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"sel": {"CommandLine|windash|contains": " -enc "}, "condition": "sel"})
    for dash in ("-", "/", "\u2013", "\u2014", "\u2015"):
        assert rule.matches(make_event(**{CMD: f"powershell {dash}enc abc"})), dash
    assert not rule.matches(make_event(**{CMD: "powershell +enc abc"}))


@pytest.mark.parametrize(
    ("selection", "port", "expected"),
    [
        ({"DestinationPort": 53}, 53, True),
        ({"DestinationPort": 53}, 54, False),
        ({"DestinationPort": 53}, "53", True),
        ({"DestinationPort": [53, 853]}, 853, True),
        ({"DestinationPort|lt": 1024}, 1023, True),
        ({"DestinationPort|lt": 1024}, 1024, False),
        ({"DestinationPort|lte": 1024}, 1024, True),
        ({"DestinationPort|gt": 1024}, 1025, True),
        ({"DestinationPort|gt": 1024}, 1024, False),
        ({"DestinationPort|gte": 1024}, 1024, True),
        ({"DestinationPort|gte": 1024}, "not a number", False),
        ({"DestinationPort": "53"}, 53, True),  # string value vs numeric field
    ],
)
def test_numbers(
    compile_rule: RuleFactory, selection: dict[str, Any], port: object, expected: bool
) -> None:
    event = make_event("network_connection", destination__port=port)
    rule = compile_rule(
        {"sel": selection, "condition": "sel"}, logsource={"category": "network_connection"}
    )
    assert rule.matches(event) is expected


@pytest.mark.parametrize(
    ("cidr", "ip", "expected"),
    [
        ("10.30.0.0/16", "10.30.4.5", True),
        ("10.30.0.0/16", "10.31.0.1", False),
        ("10.30.0.0/16", "not-an-ip", False),
        ("10.30.0.0/16", "::1", False),
        ("2001:db8::/32", "2001:db8::7", True),
        ("2001:db8::/32", "2001:db9::7", False),
    ],
)
def test_cidr(compile_rule: RuleFactory, cidr: str, ip: str, expected: bool) -> None:
    rule = compile_rule(
        {"sel": {"DestinationIp|cidr": cidr}, "condition": "sel"},
        logsource={"category": "network_connection"},
    )
    assert rule.matches(make_event("network_connection", destination__ip=ip)) is expected


def test_null_and_exists(compile_rule: RuleFactory) -> None:
    null = compile_rule({"sel": {"ParentCommandLine": None}, "condition": "sel"})
    exists = compile_rule({"sel": {"ParentCommandLine|exists": True}, "condition": "sel"})
    missing = compile_rule({"sel": {"ParentCommandLine|exists": False}, "condition": "sel"})
    with_parent = make_event(process__parent__command_line="-bash")
    without = make_event(process__pid=1)
    explicit_none = make_event(process__parent__command_line=None)
    assert null.matches(without) and null.matches(explicit_none)
    assert not null.matches(with_parent)
    assert exists.matches(with_parent) and not exists.matches(without)
    assert missing.matches(without) and not missing.matches(with_parent)


def test_bool_values(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"sel": {"sekimori.flag": True}, "condition": "sel"})
    assert rule.matches(make_event(sekimori__flag=True))
    assert rule.matches(make_event(sekimori__flag="true"))
    assert not rule.matches(make_event(sekimori__flag=False))
    assert not rule.matches(make_event(sekimori__flag=1))


def test_list_valued_fields_match_any_element(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"sel": {"host.ip|cidr": "10.30.0.0/16"}, "condition": "sel"})
    assert rule.matches(make_event(host__ip=["10.10.0.1", "10.30.0.9"]))
    assert not rule.matches(make_event(host__ip=["10.10.0.1"]))
    assert not rule.matches(make_event(host__ip=[]))


def test_absent_field_never_matches_a_value(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"sel": {"CommandLine|contains": ""}, "condition": "sel"})
    assert rule.matches(make_event(**{CMD: "anything"}))
    assert not rule.matches(make_event(process__pid=1))


def test_already_dotted_keys_are_read(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"sel": {"CommandLine": "id"}, "condition": "sel"})
    assert rule.matches({"process.command_line": "id", "sekimori.kind": "process_start"})


def test_fieldref(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"sel": {"Image|fieldref": "ParentImage"}, "condition": "sel"})
    same = make_event(process__executable="/bin/sh", process__parent__executable="/BIN/sh")
    other = make_event(process__executable="/bin/sh", process__parent__executable="/bin/bash")
    assert rule.matches(same) and not rule.matches(other)
    assert not rule.matches(make_event(process__executable="/bin/sh"))


def test_keywords_search_every_string_value(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"keywords": ["mimikatz", "sekurlsa"], "condition": "keywords"})
    assert rule.matches(make_event(process__args=["x", "MIMIKATZ.exe"]))
    assert rule.matches(make_event(process__parent__command_line="run sekurlsa::logonpasswords"))
    assert not rule.matches(make_event(process__command_line="benign"))


def test_keywords_with_all(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"keywords": {"|all": ["curl", "sh"]}, "condition": "keywords"})
    assert rule.matches(make_event(process__command_line="curl x | sh"))
    assert not rule.matches(make_event(process__command_line="curl x"))


def test_multiple_fields_in_selection_are_anded(compile_rule: RuleFactory) -> None:
    rule = compile_rule(
        {"sel": {"Image|endswith": "/nc", "CommandLine|contains": " -e "}, "condition": "sel"}
    )
    assert rule.matches(make_event(process__executable="/bin/nc", process__command_line="nc -e sh"))
    assert not rule.matches(make_event(process__executable="/bin/nc", process__command_line="nc"))
    assert not rule.matches(make_event(process__executable="/bin/x", process__command_line=" -e "))


def test_list_of_maps_is_ored(compile_rule: RuleFactory) -> None:
    rule = compile_rule(
        {
            "sel": [{"Image|endswith": "/nmap"}, {"CommandLine|contains": "masscan"}],
            "condition": "sel",
        }
    )
    assert rule.matches(make_event(process__executable="/usr/bin/nmap"))
    assert rule.matches(make_event(process__command_line="sudo masscan"))
    assert not rule.matches(make_event(process__executable="/usr/bin/zmap"))


DETECTIONS: dict[str, Any] = {
    "selection_a": {"CommandLine|contains": "aaa"},
    "selection_b": {"CommandLine|contains": "bbb"},
    "filter": {"User": "root"},
}


@pytest.mark.parametrize(
    ("condition", "cmd", "user", "expected"),
    [
        ("selection_a and selection_b", "aaa bbb", "u", True),
        ("selection_a and selection_b", "aaa", "u", False),
        ("selection_a or selection_b", "bbb", "u", True),
        ("selection_a or selection_b", "ccc", "u", False),
        ("not selection_a", "bbb", "u", True),
        ("not selection_a", "aaa", "u", False),
        ("selection_a and not filter", "aaa", "root", False),
        ("selection_a and not filter", "aaa", "alice", True),
        ("(selection_a or selection_b) and not filter", "bbb", "alice", True),
        ("selection_a or selection_b and filter", "aaa", "alice", True),  # and binds tighter
        ("(selection_a or selection_b) and filter", "aaa", "alice", False),
        ("1 of selection_*", "bbb", "u", True),
        ("1 of selection_*", "ccc", "u", False),
        ("all of selection_*", "aaa bbb", "u", True),
        ("all of selection_*", "aaa", "u", False),
        ("any of selection_*", "aaa", "u", True),
        ("1 of them", "ccc", "root", True),
        ("1 of them", "ccc", "alice", False),
        ("all of them", "aaa bbb", "root", True),
        ("all of them", "aaa bbb", "alice", False),
        ("1 of selection_* and not filter", "aaa", "root", False),
        ("not 1 of selection_*", "ccc", "u", True),
        ("not (selection_a or selection_b)", "aaa", "u", False),
    ],
)
def test_conditions(
    compile_rule: RuleFactory, condition: str, cmd: str, user: str, expected: bool
) -> None:
    rule = compile_rule({**DETECTIONS, "condition": condition})
    event = make_event(process__command_line=cmd, user__name=user)
    assert rule.matches(event) is expected


def test_negation_of_missing_field_matches(compile_rule: RuleFactory) -> None:
    rule = compile_rule({**DETECTIONS, "condition": "selection_a and not filter"})
    assert rule.matches(make_event(process__command_line="aaa"))


def test_condition_list_is_ored(compile_rule: RuleFactory) -> None:
    rule = compile_rule({**DETECTIONS, "condition": ["selection_a", "selection_b"]})
    assert rule.matches(make_event(process__command_line="bbb"))
    assert not rule.matches(make_event(process__command_line="ccc"))


def test_field_mapping_and_passthrough(compile_rule: RuleFactory) -> None:
    rule = compile_rule(
        {
            "sel": {
                "Image": "/usr/bin/python3",
                "ParentImage": "/usr/bin/bash",
                "ParentCommandLine": "-bash",
                "User": "alice",
                "CurrentDirectory": "/tmp",
                "ProcessId": 10,
                "ParentProcessId": 9,
                "sekimori.zone.host": "internet",
            },
            "condition": "sel",
        }
    )
    assert rule.fields == (
        "process.executable",
        "process.parent.command_line",
        "process.parent.executable",
        "process.parent.pid",
        "process.pid",
        "process.working_directory",
        "sekimori.zone.host",
        "user.name",
    )
    event = make_event(
        process__executable="/usr/bin/python3",
        process__parent__executable="/usr/bin/bash",
        process__parent__command_line="-bash",
        user__name="alice",
        process__working_directory="/tmp",
        process__pid=10,
        process__parent__pid=9,
        sekimori__zone__host="internet",
    )
    assert rule.matches(event)


def test_network_field_mapping(compile_rule: RuleFactory) -> None:
    rule = compile_rule(
        {
            "sel": {
                "DestinationIp": "10.0.0.1",
                "DestinationPort": 445,
                "SourceIp": "10.0.0.2",
                "SourcePort": 5000,
                "Protocol": "tcp",
            },
            "condition": "sel",
        },
        logsource={"category": "network_connection", "product": "linux"},
    )
    event = make_event(
        "network_connection",
        destination__ip="10.0.0.1",
        destination__port=445,
        source__ip="10.0.0.2",
        source__port=5000,
        network__transport="TCP",
    )
    assert rule.matches(event)


def test_hashes_sha256_maps_to_process_hash(compile_rule: RuleFactory) -> None:
    digest = "ab" * 32
    rule = compile_rule(
        {"sel": {"Hashes|contains": f"SHA256={digest.upper()}"}, "condition": "sel"}
    )
    assert "process.hash.sha256" in rule.fields
    assert rule.matches(make_event(process__hash__sha256=digest))
    assert not rule.matches(make_event(process__hash__sha256="cd" * 32))


def test_neq_negates_the_item(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"sel": {"User": "alice", "Image|neq": "/bin/sh"}, "condition": "sel"})
    assert rule.matches(make_event(user__name="alice", process__executable="/bin/bash"))
    assert not rule.matches(make_event(user__name="alice", process__executable="/bin/sh"))


def test_wide_encodes_utf16le(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"sel": {"CommandLine|wide|contains": "ab"}, "condition": "sel"})
    assert rule.matches(make_event(process__command_line="x a\x00b\x00 y"))
    assert not rule.matches(make_event(process__command_line="x ab y"))


def test_timestamp_parts(compile_rule: RuleFactory) -> None:
    rule = compile_rule({"sel": {"@timestamp|hour": 3, "@timestamp|month": 11}, "condition": "sel"})
    assert rule.matches(make_event(**{"@timestamp": "2026-11-26T03:15:00Z"}))
    assert not rule.matches(make_event(**{"@timestamp": "2026-11-26T04:15:00Z"}))
    assert not rule.matches(make_event(**{"@timestamp": "not a time"}))
    weekly = compile_rule(
        {"sel": {"@timestamp|week": 48, "@timestamp|year": 2026}, "condition": "sel"}
    )
    assert weekly.matches(make_event(**{"@timestamp": "2026-11-26T03:15:00+09:00"}))


def test_unresolved_placeholder_is_skipped_with_reason(load_one: Callable[..., RuleSet]) -> None:
    ruleset = load_one({"sel": {"CommandLine|expand": "%admin_users%"}, "condition": "sel"})
    assert len(ruleset) == 0 and ruleset.errors == []
    (skipped,) = ruleset.skipped
    assert skipped.reason == "unsupported_feature"
    assert "placeholder %admin_users%" in skipped.detail


def test_placeholders_expand_to_value_lists(tmp_path: Any) -> None:
    from detections import load_rules
    from tests.detections.conftest import rule_yaml

    path = tmp_path / "rule.yml"
    detection = {"sel": {"User|expand": "%admins%"}, "condition": "sel"}
    path.write_text(rule_yaml(detection), encoding="utf-8")
    ruleset = load_rules([path], placeholders={"admins": ["root", "Admin*"]})
    (rule,) = ruleset.rules
    assert rule.matches(make_event(user__name="root"))
    assert rule.matches(make_event(user__name="administrator"))
    assert not rule.matches(make_event(user__name="alice"))
