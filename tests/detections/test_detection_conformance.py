"""Conformance: every case of ../shared/sigma/regression_data reproduces its match count.

Each case's EVTX sample *and* its JSON twin are replayed through full logsource routing. No
case is skipped: a case that cannot run (disabled upstream) or whose upstream ``match_count``
is wrong is listed below with the reason, and the test asserts exactly that outcome.
"""

from __future__ import annotations

from collections import Counter

from detections import RuleSet
from detections.conformance import CaseResult, regression_cases, run_case
from tests.detections.conftest import SIGMA_ROOT, require_shared

# Cases whose upstream match_count disagrees with the rule: every listed event satisfies the
# detection on its own (checked by hand, see docs/rules.md). SigmaHQ's regression runner only
# checks that the rule fires at least once (tests/regression_tests_runner.py), so a stale
# count goes unnoticed upstream. Value: (upstream count, count per Sigma semantics).
UPSTREAM_COUNT_ERRORS: dict[str, tuple[int, int]] = {
    # procdump.exe, procdump64.exe, procdump64a.exe each end with a listed name
    "rules/windows/file/file_event/file_event_win_cred_dump_tools_dropped_files": (1, 3),
    # three ZoneMap\Domains values (http, https, *) set to DWORD 2
    "rules/windows/registry/registry_set/registry_set_change_security_zones": (1, 3),
    # AutoShareServer and AutoShareWks both set to 0
    "rules/windows/registry/registry_set/registry_set_disable_administrative_share": (1, 2),
}
# Cases upstream defines without any test (regression_tests_info commented out).
DISABLED_UPSTREAM = {"rules/cisco/aaa/cisco_cli_dot1x_disabled"}


def run_all(ruleset: RuleSet) -> list[CaseResult]:
    cases = regression_cases(require_shared(SIGMA_ROOT))
    assert len(cases) >= 128, f"only {len(cases)} regression cases found"
    return [result for info in cases for result in run_case(info, SIGMA_ROOT, ruleset)]


def test_every_regression_case_reproduces_its_count(sigma_corpus: RuleSet) -> None:
    results = run_all(sigma_corpus)
    failures: list[str] = []
    verdicts: Counter[str] = Counter()
    for result in results:
        if result.case in DISABLED_UPSTREAM:
            verdicts["disabled upstream"] += 1
            if result.sample or "no regression_tests_info" not in (result.problem or ""):
                failures.append(f"{result.case}: expected to be disabled upstream, got {result}")
        elif result.case in UPSTREAM_COUNT_ERRORS:
            upstream, actual = UPSTREAM_COUNT_ERRORS[result.case]
            verdicts["upstream count corrected"] += 1
            if (result.expected, result.actual) != (upstream, actual):
                failures.append(f"{result.case} {result.sample}: {result}")
        elif result.ok:
            verdicts["exact"] += 1
        else:
            failures.append(f"{result.case} {result.sample}: {result.problem}")
    assert not failures, "\n".join(failures)
    samples = sum(1 for r in results if r.sample)
    print(f"conformance: {dict(verdicts)} over {samples} sample files")
    assert verdicts["exact"] == samples - 2 * len(UPSTREAM_COUNT_ERRORS)


def test_both_evtx_and_json_samples_are_replayed(sigma_corpus: RuleSet) -> None:
    results = run_all(sigma_corpus)
    suffixes = Counter(r.sample.rsplit(".", 1)[-1] for r in results if r.sample)
    assert suffixes["evtx"] >= 128
    assert suffixes["json"] >= 128


def test_routing_is_part_of_conformance(sigma_corpus: RuleSet) -> None:
    """A process_creation rule never fires on the image-load sample of another case."""
    image_load = next(
        info for info in regression_cases(SIGMA_ROOT) if "image_load" in str(info.parent)
    )
    from detections.readers import iter_events

    events = list(iter_events(next(image_load.parent.glob("*.evtx"))))
    assert events and all(e["EventID"] == 7 for e in events)
    for event in events:
        for rule in sigma_corpus.fired(event):
            assert rule.logsource[0] in ("image_load", None), rule.title
