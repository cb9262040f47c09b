"""Retro hunts: run Sigma rules over stored events since a time and raise alerts.

    report = run_hunt(store, load_rules(paths), since=datetime.now(UTC) - parse_age("30d"))

Each rule is planned by ``hunt_plan.plan_rule`` (a native query on the store, or a scan of
the events of its kinds when a query could miss). The window is walked in time slices; per
slice the candidates of all rules are gathered, put in event order and confirmed with the
streaming matcher (``RuleSet.match``), and every match goes through ``AlertManager.record``.
So a hunt raises exactly the alerts streaming detection raises for the same events in time
order, and alert ids are deterministic, so a hunt over events that streaming already saw
finds the existing alerts instead of twins.

Correlation rules are not hunted (``RuleSet.skipped`` lists them); see docs/stores.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from agents.errors import ConfigError, StoreError
from agents.schema import get_path, parse_duration, parse_iso
from collector.alerts import AlertManager, entity_of
from collector.hunt_plan import HuntPlan, plan_rule
from collector.models import Alert, EventQuery
from collector.store.base import Store
from detections import RuleSet

DEFAULT_SLICE: Final = timedelta(hours=1)
ONE_TICK: Final = timedelta(microseconds=1)


def parse_age(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` -> timedelta (for ``--since``)."""
    try:
        return parse_duration(text)
    except ValueError:
        raise ConfigError(
            f"not an age: {text!r}", remedy="use a number and s/m/h/d/w, e.g. 30d"
        ) from None


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An age (``30d``) before now, or an RFC 3339 timestamp."""
    try:
        return (now or datetime.now(UTC)) - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_iso(text)
    except ValueError:
        raise ConfigError(
            f"not an age or timestamp: {text!r}", remedy="use 30d or 2026-11-01T00:00:00Z"
        ) from None


@dataclass(slots=True)
class HuntReport:
    since: datetime
    until: datetime
    plans: list[HuntPlan]
    examined: int = 0  # candidate events confirmed with the matcher
    matches: int = 0
    new_alerts: int = 0
    updated_alerts: int = 0
    known: int = 0  # matches already in an alert (streaming saw them)
    alerts: dict[str, Alert] = field(default_factory=dict)  # touched, by id

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "rules": [plan.to_json() for plan in self.plans],
            "examined": self.examined,
            "matches": self.matches,
            "new_alerts": self.new_alerts,
            "updated_alerts": self.updated_alerts,
            "already_known": self.known,
            "alerts": [alert.to_json() for alert in self.alerts.values()],
        }


def _order(event: dict[str, Any]) -> tuple[str, str, int, str]:
    return (
        str(event["@timestamp"]),
        str(get_path(event, "agent.id")),
        int(get_path(event, "sekimori.seq") or 0),
        str(get_path(event, "event.id")),
    )


class Hunter:
    def __init__(self, store: Store, rules: RuleSet, alerts: AlertManager) -> None:
        self.store = store
        self.rules = rules
        self.alerts = alerts
        self.plans = [plan_rule(rule, store.hunt_dialect) for rule in rules.rules]

    def _candidates(self, start: datetime, end: datetime) -> list[dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        scan_kinds: set[str] = set()
        for index, plan in enumerate(self.plans):
            if plan.strategy == "scan" or plan.condition is None:
                scan_kinds.update(plan.kinds)
                continue
            window = EventQuery(since=start, until=end, kinds=plan.kinds)
            try:
                for event in self.store.search_native(plan.condition, window):
                    found[str(get_path(event, "event.id"))] = event
            except StoreError as exc:  # the engine refused the query: scan this rule instead
                self.plans[index] = HuntPlan(
                    rule_id=plan.rule_id,
                    title=plan.title,
                    kinds=plan.kinds,
                    strategy="scan",
                    condition=None,
                    reason=f"store refused the query: {exc.message}"[:300],
                )
                scan_kinds.update(plan.kinds)
        if scan_kinds:
            window = EventQuery(since=start, until=end, kinds=tuple(sorted(scan_kinds)))
            for event in self.store.iter_events(window):
                found[str(get_path(event, "event.id"))] = event
        return sorted(found.values(), key=_order)

    def run(self, since: datetime, until: datetime, step: timedelta = DEFAULT_SLICE) -> HuntReport:
        report = HuntReport(since=since, until=until, plans=self.plans)
        start = since
        while start <= until:
            end = min(start + step - ONE_TICK, until)
            for event in self._candidates(start, end):
                report.examined += 1
                for match in self.rules.match(event):
                    report.matches += 1
                    self._record(report, match, event)
            start = end + ONE_TICK
        return report

    def _record(self, report: HuntReport, match: Any, event: dict[str, Any]) -> None:
        at = parse_iso(event["@timestamp"])
        before = self.store.find_open_alert(
            match.rule_id, entity_of(event), at - self.alerts.window
        )
        alert = self.alerts.record(match, event)
        if before is None:
            report.new_alerts += 1
        elif alert == before:
            report.known += 1
        else:
            report.updated_alerts += 1
        report.alerts[alert.id] = alert


def run_hunt(
    store: Store,
    rules: RuleSet,
    *,
    since: datetime,
    until: datetime | None = None,
    alerts: AlertManager | None = None,
    step: timedelta = DEFAULT_SLICE,
) -> HuntReport:
    """Hunt ``rules`` over the store's events in ``since..until`` (default: now)."""
    end = until or datetime.now(UTC)
    if since > end:
        raise ConfigError(f"hunt window starts after it ends ({since} > {end})")
    hunter = Hunter(store, rules, alerts or AlertManager(store))
    return hunter.run(since, end, step)
