"""The whole SigmaHQ corpus in ../shared/sigma: every rule compiles or is counted with a reason.

No rule may end in ``errors``; every skipped rule carries one of the documented reasons. The
compiled-ruleset cache must round-trip the corpus exactly (same specs, same verdicts).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from detections import RuleSet, load_rules
from detections.cache import cache_file
from detections.loader import rule_files
from tests.detections.conftest import CORPUS_DIRS, SIGMA_ROOT

# Rule files in the snapshot, and how they must come out.
EXPECTED_FILES = 3754
EXPECTED_COMPILED = 3010  # + 11 category: dns rules (routed to the sensor's dns events)
EXPECTED_SKIPPED = {"unsupported_logsource": 742, "unsupported_feature": 2}


def test_every_rule_compiles_or_is_skipped_with_a_reason(sigma_corpus: RuleSet) -> None:
    files = rule_files([SIGMA_ROOT / name for name in CORPUS_DIRS], [])
    assert len(files) == EXPECTED_FILES
    assert [str(e) for e in sigma_corpus.errors] == []
    assert len(sigma_corpus) == EXPECTED_COMPILED
    assert dict(Counter(s.reason for s in sigma_corpus.skipped)) == EXPECTED_SKIPPED
    assert len(sigma_corpus) + len(sigma_corpus.skipped) == EXPECTED_FILES
    for skipped in sigma_corpus.skipped:
        assert skipped.detail, skipped
    features = {s.detail for s in sigma_corpus.skipped if s.reason == "unsupported_feature"}
    assert features == {"placeholder %known_cdcs% is not resolved"}


def test_windows_rules_route_by_channel_and_event_id(sigma_corpus: RuleSet) -> None:
    windows = [r for r in sigma_corpus if r.windows]
    assert len(windows) > 2300
    proc = [r for r in windows if r.logsource[0] == "process_creation"]
    for rule in proc:
        assert rule.windows == {("microsoft-windows-sysmon/operational", 1), ("security", 4688)}
    linux = [r for r in sigma_corpus if r.kinds]
    assert linux and all(not r.windows for r in linux)
    reasons = Counter(s.detail.split(" (")[0] for s in sigma_corpus.skipped)
    assert any("file_access" in reason for reason in reasons)


def test_placeholders_resolve_expand(tmp_path: Path) -> None:
    rules = SIGMA_ROOT / "rules-emerging-threats"
    expand = [p for p in rules.rglob("*.yml") if "%known_cdcs%" in p.read_text(encoding="utf-8")]
    assert len(expand) == 2
    ruleset = load_rules(expand, placeholders={"known_cdcs": ["DC01$", "DC02$"]})
    assert not ruleset.errors and not ruleset.skipped and len(ruleset) == len(expand)


def test_cache_round_trips_the_corpus(sigma_corpus: RuleSet, tmp_path: Path) -> None:
    paths = [SIGMA_ROOT / name for name in CORPUS_DIRS]
    first = load_rules(paths, cache_dir=tmp_path)
    assert cache_file(tmp_path, rule_files(paths, []), None).is_file()
    started = time.perf_counter()
    second = load_rules(paths, cache_dir=tmp_path)
    elapsed = time.perf_counter() - started
    print(f"cached corpus load: {elapsed:.2f}s")
    assert [r.spec() for r in second] == [r.spec() for r in first]
    assert [r.spec() for r in first] == [r.spec() for r in sigma_corpus]
    assert second.skipped == first.skipped
    assert [str(e) for e in second.errors] == [str(e) for e in first.errors]


def test_cache_is_invalidated_by_an_edit(tmp_path: Path) -> None:
    source = next((SIGMA_ROOT / "rules" / "windows" / "process_creation").glob("*.yml"))
    rule = tmp_path / "rules" / source.name
    rule.parent.mkdir()
    rule.write_text(source.read_text(encoding="utf-8"), encoding="utf-8")
    cache = tmp_path / "cache"
    before = load_rules([rule.parent], cache_dir=cache)
    text = rule.read_text(encoding="utf-8").replace("level: ", "level: critical\nx_old_level: ", 1)
    rule.write_text(text, encoding="utf-8")
    after = load_rules([rule.parent], cache_dir=cache)
    assert len(before) == len(after) == 1
    assert after.rules[0].level == "critical"
    assert len(list(cache.glob("ruleset-*.pickle"))) == 2
