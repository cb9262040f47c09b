"""``sekimori lab test``: baseline first, then every scenario, then a final false-positive check.

The verdict: every expected rule of every scenario fired within the scenario's timeout, the
baseline raised nothing, and nothing else appeared (an alert whose rule no scenario run so far
expects or tolerates is a false positive of the phase in which it appeared).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from collector.lab import session
from collector.lab.baseline import baseline_steps
from collector.lab.runner import (
    PhaseResult,
    Seen,
    changed,
    fingerprint,
    run_baseline,
    run_scenario,
)
from collector.lab.scenarios import SCENARIOS, Parts, Scenario, get_scenario

BASELINE_SETTLE = 8.0  # flows end after the sensor's idle timeout (5 s), analytics every 2 s
FINAL_SETTLE = 6.0


@dataclass(slots=True, kw_only=True)
class LabReport:
    baseline: PhaseResult
    scenarios: list[PhaseResult] = field(default_factory=list)
    final: PhaseResult = field(default_factory=lambda: PhaseResult(name="final"))
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        phases = [self.baseline, *self.scenarios, self.final]
        return all(p.ok for p in phases)

    @property
    def false_positives(self) -> int:
        phases = [self.baseline, *self.scenarios, self.final]
        return sum(len(p.unexpected) for p in phases)

    def to_json(self) -> dict[str, object]:
        detected = sum(1 for s in self.scenarios if not s.missed)
        return {
            "ok": self.ok,
            "scenarios_detected": detected,
            "scenarios_total": len(self.scenarios),
            "baseline_alerts": len(self.baseline.unexpected),
            "false_positives": self.false_positives,
            "seconds": round(self.seconds, 1),
            "baseline": self.baseline.to_json(),
            "scenarios": [s.to_json() for s in self.scenarios],
            "final": self.final.to_json(),
        }


def select(names: Sequence[str]) -> list[Scenario]:
    return [get_scenario(n) for n in names] if names else list(SCENARIOS)


def run_lab_test(
    data_dir: Path,
    topology_file: Path | None,
    names: Sequence[str] = (),
    *,
    keep: bool = False,
    say: Callable[[str], None] = lambda _m: None,
) -> LabReport:
    scenarios = select(names)
    started = time.monotonic()
    lab = session.running(data_dir)
    if lab is None:
        say("building the lab (namespaces, collector, services, agents)")
        lab = session.up(data_dir, topology_file)
    try:
        say("benign baseline")
        baseline = run_baseline(lab, baseline_steps(Parts.of(lab.topology)), BASELINE_SETTLE)
        report = LabReport(baseline=baseline)
        earlier: set[str] = set()
        for scenario in scenarios:
            say(f"scenario {scenario.name}")
            result = run_scenario(lab, scenario, earlier=frozenset(earlier))
            report.scenarios.append(result)
            earlier.update(scenario.expects, scenario.tolerates)
        store = lab.store()
        try:
            before = fingerprint(store)
            time.sleep(FINAL_SETTLE)
            report.final.unexpected = [
                Seen(rule_id=a.rule_id, title=a.title, host=a.host, seconds=0.0)
                for a in changed(store, before)
                if a.rule_id not in earlier
            ]
        finally:
            store.close()
        report.seconds = time.monotonic() - started
        return report
    finally:
        if not keep:
            say("removing the lab")
            session.down(data_dir, topology_file)
