"""Correlation rules in streaming: every type, group-by, windows, ordering, lateness, caps."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from detections import RuleSet, load_rules
from detections.correlation import CorrelationEngine, CorrelationMatch

FAIL = "00000000-0000-4000-8000-00000000000a"
OK = "00000000-0000-4000-8000-00000000000b"
RECON = "00000000-0000-4000-8000-00000000000c"

BASE = f"""\
title: failed login
id: {FAIL}
name: failed_login
logsource: {{category: process_creation, product: linux}}
detection:
  sel: {{CommandLine|contains: failed}}
  condition: sel
---
title: ok login
id: {OK}
name: ok_login
logsource: {{category: process_creation, product: linux}}
detection:
  sel: {{CommandLine|contains: success}}
  condition: sel
---
title: recon
id: {RECON}
name: recon
logsource: {{category: process_creation, product: linux}}
detection:
  sel: {{CommandLine|contains: whoami}}
  condition: sel
"""


def ruleset(tmp_path: Path, correlation: str) -> RuleSet:
    path = tmp_path / "rules.yml"
    path.write_text(BASE + "---\n" + textwrap.dedent(correlation), encoding="utf-8")
    loaded = load_rules([path])
    assert loaded.errors == [] and loaded.skipped == [], [str(e) for e in loaded.errors]
    return loaded


def event(t: float, command: str, **fields: Any) -> dict[str, Any]:
    return {
        "@timestamp": t,
        "sekimori": {"kind": "process_start"},
        "process": {"command_line": command},
        **fields,
    }


def run(engine: CorrelationEngine, events: list[dict[str, Any]]) -> list[CorrelationMatch]:
    out: list[CorrelationMatch] = []
    for item in events:
        out.extend(engine.process(item))
    return out + engine.flush()


def corr(kind: str, rules: str, condition: str = "", group: str = "[user]", span: str = "60s",
         extra: str = "") -> str:  # fmt: skip
    return f"""\
title: corr
id: 00000000-0000-4000-8000-0000000000ff
name: corr
correlation:
  type: {kind}
  rules: {rules}
  group-by: {group}
  timespan: {span}
{condition}{extra}level: high
"""


EVENT_COUNT = corr("event_count", "[failed_login]", "  condition: {gte: 3}\n")


def test_event_count_fires_once_per_burst_and_groups(tmp_path: Path) -> None:
    engine = CorrelationEngine(ruleset(tmp_path, EVENT_COUNT))
    events = [event(t, "failed", user="alice") for t in (0, 10, 20, 30)]
    events += [event(t, "failed", user="bob") for t in (0, 10)]
    hits = run(engine, events)
    assert [(h.group, h.count, h.first_seen, h.last_seen) for h in hits] == [
        ((("user", "alice"),), 3, 0.0, 20.0)
    ]


def test_event_count_respects_timespan(tmp_path: Path) -> None:
    engine = CorrelationEngine(ruleset(tmp_path, EVENT_COUNT))
    assert run(engine, [event(t, "failed", user="a") for t in (0, 61, 122, 183)]) == []


def test_burst_crossing_a_window_edge_is_seen(tmp_path: Path) -> None:
    """Three events at 50, 70, 100 s: fixed 60 s buckets [0,60) [60,120) would miss them."""
    engine = CorrelationEngine(ruleset(tmp_path, EVENT_COUNT))
    hits = run(engine, [event(t, "failed", user="a") for t in (50, 70, 100)])
    assert [h.count for h in hits] == [3]


def test_group_by_with_missing_field_is_not_correlated(tmp_path: Path) -> None:
    engine = CorrelationEngine(ruleset(tmp_path, EVENT_COUNT))
    assert run(engine, [event(t, "failed") for t in (0, 1, 2, 3)]) == []
    assert engine.stats["missing_group_field"] == 4


def test_base_rule_is_silent_unless_generate(tmp_path: Path) -> None:
    silent = ruleset(tmp_path, EVENT_COUNT)
    assert silent.match(event(0, "failed", user="a")) == []
    loud = ruleset(
        tmp_path,
        corr(
            "event_count", "[failed_login]", "  condition: {gte: 3}\n", extra="  generate: true\n"
        ),
    )
    assert [m.rule_id for m in loud.match(event(0, "failed", user="a"))] == [FAIL]


def test_value_count(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path, corr("value_count", "[failed_login]", "  condition: {gte: 3, field: host}\n")
    )
    engine = CorrelationEngine(rules)
    same_host = [event(t, "failed", user="a", host="h1") for t in range(5)]
    assert run(engine, same_host) == []
    spread = [event(t, "failed", user="a", host=f"h{t}") for t in range(3)]
    assert [h.count for h in run(CorrelationEngine(rules), spread)] == [3]


def test_value_count_ignores_events_without_the_field(tmp_path: Path) -> None:
    rules = ruleset(
        tmp_path, corr("value_count", "[failed_login]", "  condition: {gte: 2, field: host}\n")
    )
    engine = CorrelationEngine(rules)
    assert run(engine, [event(0, "failed", user="a"), event(1, "failed", user="a")]) == []
    assert engine.stats["missing_value_field"] == 2


def test_temporal_any_order(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, corr("temporal", "[recon, ok_login]"))
    hits = run(
        CorrelationEngine(rules), [event(0, "success", user="a"), event(5, "whoami", user="a")]
    )
    assert [h.count for h in hits] == [2]
    far = [event(0, "success", user="a"), event(500, "whoami", user="a")]
    assert run(CorrelationEngine(rules), far) == []


def test_temporal_ordered_requires_order(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, corr("temporal_ordered", "[failed_login, ok_login]"))
    wrong = [event(0, "success", user="a"), event(5, "failed", user="a")]
    assert run(CorrelationEngine(rules), wrong) == []
    right = [event(0, "failed", user="a"), event(5, "success", user="a")]
    assert [h.count for h in run(CorrelationEngine(rules), right)] == [2]
    late = [event(0, "failed", user="a"), event(120, "success", user="a")]
    assert run(CorrelationEngine(rules), late) == []


def test_out_of_order_within_lateness_is_reordered(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, corr("temporal_ordered", "[failed_login, ok_login]"))
    shuffled = [event(5, "success", user="a"), event(0, "failed", user="a")]
    assert [h.count for h in run(CorrelationEngine(rules, lateness=10), shuffled)] == [2]
    strict = CorrelationEngine(rules, lateness=0)
    assert run(strict, shuffled) == []
    assert strict.stats["late_events"] == 1


def test_lt_condition_is_judged_when_the_window_closes(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, corr("event_count", "[failed_login]", "  condition: {lt: 2}\n"))
    engine = CorrelationEngine(rules)
    hits = run(engine, [event(0, "failed", user="a"), event(100, "failed", user="b")])
    assert sorted(h.group for h in hits) == [(("user", "a"),), (("user", "b"),)]
    busy = [event(t, "failed", user="a") for t in (0, 1, 2)]
    assert run(CorrelationEngine(rules), busy) == []


def test_aliases_and_chaining(tmp_path: Path) -> None:
    aliased = corr(
        "temporal", "[failed_login, ok_login]", group="[account]",
        extra="  aliases:\n    account:\n      failed_login: target\n      ok_login: user\n",
    )  # fmt: skip
    rules = ruleset(tmp_path, aliased)
    hits = run(
        CorrelationEngine(rules), [event(0, "failed", target="x"), event(1, "success", user="x")]
    )
    assert [h.group for h in hits] == [(("account", "x"),)]


def test_per_key_state_is_capped(tmp_path: Path) -> None:
    rules = ruleset(tmp_path, corr("event_count", "[failed_login]", "  condition: {gte: 100}\n"))
    engine = CorrelationEngine(rules, max_per_key=10)
    assert run(engine, [event(t / 10, "failed", user="a") for t in range(50)]) == []
    assert engine.stats["state_capped"] == 40


def test_state_expires_with_the_timespan(tmp_path: Path) -> None:
    engine = CorrelationEngine(ruleset(tmp_path, EVENT_COUNT))
    for user in range(3000):
        engine.process(event(user * 1.0, "failed", user=f"u{user}"))
    assert len(engine._state) < 1200  # groups idle for > 60 s were dropped
    assert engine.stats["expired_groups"] > 0


@pytest.mark.parametrize("kind", ["value_sum", "value_avg"])
def test_unsupported_correlation_types_are_errors(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "rules.yml"
    text = BASE + "---\n" + corr(kind, "[failed_login]", "  condition: {gte: 3, field: x}\n")
    path.write_text(text, encoding="utf-8")
    loaded = load_rules([path])
    assert any("not supported" in e.message for e in loaded.errors)
