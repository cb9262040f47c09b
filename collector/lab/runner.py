"""Run the benign baseline and scenarios against a running lab and watch the alert table.

An alert counts for a phase (baseline or scenario) when it appears or changes (count or
last_seen grows) after the phase started: alerts are deduplicated per rule and host, so a
repeated attack updates the existing alert rather than opening a new one. Latency is
**store-visible**: seconds from the action's start to the poll (every 0.2 s) that first sees
the alert in the collector's store, measured while the action runs.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from collector.lab.netns import in_ns, ns_name
from collector.lab.scenarios import Parts, Scenario, Step
from collector.lab.session import Lab
from collector.models import Alert
from collector.store.base import Store

POLL = 0.2
Fingerprint = dict[str, tuple[int, float]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Seen:
    rule_id: str
    title: str
    host: str
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "rule_id": self.rule_id,
            "title": self.title,
            "host": self.host,
            "seconds": round(self.seconds, 2),
        }


@dataclass(slots=True, kw_only=True)
class PhaseResult:
    name: str
    expects: tuple[str, ...] = ()
    tolerates: tuple[str, ...] = ()
    fired: dict[str, Seen] = field(default_factory=dict)  # expected rule id -> first sighting
    unexpected: list[Seen] = field(default_factory=list)
    error: str | None = None

    @property
    def missed(self) -> list[str]:
        return [r for r in self.expects if r not in self.fired]

    @property
    def ok(self) -> bool:
        return not self.missed and not self.unexpected and self.error is None

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "expects": list(self.expects),
            "fired": {r: s.to_json() for r, s in self.fired.items()},
            "missed": self.missed,
            "unexpected": [s.to_json() for s in self.unexpected],
            "error": self.error,
            "ok": self.ok,
        }


def fingerprint(store: Store) -> Fingerprint:
    return {a.id: (a.count, a.last_seen.timestamp()) for a in store.list_alerts(limit=100_000)}


def changed(store: Store, before: Fingerprint) -> list[Alert]:
    return [
        a
        for a in store.list_alerts(limit=100_000)
        if before.get(a.id) != (a.count, a.last_seen.timestamp())
    ]


def run_steps(parts: Parts, steps: Sequence[Step]) -> list[str]:
    """Run the steps (background ones stopped after their hold); returns problems."""
    problems: list[str] = []
    background: list[tuple[subprocess.Popen[bytes], float]] = []
    for step in steps:
        argv = in_ns(ns_name(parts.host(step.part).name), step.argv)
        if step.background:
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            background.append((proc, time.monotonic() + step.hold))
            continue
        try:
            subprocess.run(
                argv,
                check=False,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=step.timeout,
            )
        except subprocess.TimeoutExpired:
            problems.append(f"{step.argv[0]} timed out after {step.timeout:.0f}s")
    for proc, until in background:
        time.sleep(max(0.0, until - time.monotonic()))
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return problems


def run_scenario(
    lab: Lab, scenario: Scenario, settle: float = 3.0, earlier: frozenset[str] = frozenset()
) -> PhaseResult:
    """Run one scenario and wait (bounded) for its expected alerts; ``earlier``: rule ids
    of scenarios already run (their late updates are not this scenario's false positives)."""
    parts = Parts.of(lab.topology)
    result = PhaseResult(name=scenario.name, expects=scenario.expects, tolerates=scenario.tolerates)
    store = lab.store()
    try:
        before = fingerprint(store)
        problems: list[str] = []
        start = time.monotonic()
        action = threading.Thread(
            target=lambda: problems.extend(run_steps(parts, scenario.steps(parts))),
            daemon=True,
        )
        action.start()
        deadline = start + scenario.timeout
        while time.monotonic() < deadline:
            _record(result, changed(store, before), time.monotonic() - start)
            if not result.missed and not action.is_alive():
                break
            time.sleep(POLL)
        action.join()
        time.sleep(settle)
        allowed = {*scenario.expects, *scenario.tolerates, *earlier}
        for alert in changed(store, before):
            if alert.rule_id not in allowed:
                result.unexpected.append(_seen(alert, time.monotonic() - start))
        if problems:
            result.error = "; ".join(problems)
    finally:
        store.close()
    return result


def _record(result: PhaseResult, alerts: list[Alert], seconds: float) -> None:
    for alert in alerts:
        if alert.rule_id in result.expects and alert.rule_id not in result.fired:
            result.fired[alert.rule_id] = _seen(alert, seconds)


def _seen(alert: Alert, seconds: float) -> Seen:
    return Seen(rule_id=alert.rule_id, title=alert.title, host=alert.host, seconds=seconds)


def run_baseline(lab: Lab, steps: Sequence[Step], settle: float) -> PhaseResult:
    """The benign workload; every alert that appears meanwhile (or within ``settle``) is a
    false positive."""
    parts = Parts.of(lab.topology)
    result = PhaseResult(name="baseline")
    store = lab.store()
    try:
        before = fingerprint(store)
        start = time.monotonic()
        problems = run_steps(parts, steps)
        time.sleep(settle)
        result.unexpected = [_seen(a, time.monotonic() - start) for a in changed(store, before)]
        if problems:
            result.error = "; ".join(problems)
    finally:
        store.close()
    return result
