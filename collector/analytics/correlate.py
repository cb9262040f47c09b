"""Sigma correlation rules over the stored window (scan detection and the like).

The ingest pipeline matches single events; correlation rules (``value_count`` of ports per
source and target, of targets per source, ...) need a window of events across batches and
agents. Each analytics run reads the window's events of the kinds the correlations' rules
apply to, oldest first, feeds them through :class:`detections.CorrelationEngine` and turns
its matches into findings; :class:`collector.analytics.spells.AlertSpells` folds repeated
sightings of the same group into one alert per spell. Reading from the store also orders
events from different agents and late batches correctly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from agents.schema import get_path
from collector.analytics.spells import Finding
from detections import CorrelationEngine, CorrelationMatch, CorrelationSpec, RuleSet
from detections.event_time import event_time

ReadEvents = Callable[[tuple[str, ...]], Iterable[Mapping[str, Any]]]


def correlation_kinds(ruleset: RuleSet) -> tuple[str, ...]:
    """Event kinds that feed the rule set's correlations (sorted)."""
    refs = {ref for spec in ruleset.correlations for ref in spec.rules}
    kinds = {kind for rule in ruleset if rule.rule_id in refs for kind in rule.kinds}
    return tuple(sorted(kinds))


def correlation_findings(
    ruleset: RuleSet, read: ReadEvents, *, now: datetime | None = None, max_event_ids: int = 50
) -> list[Finding]:
    """Run every correlation over the events ``read(kinds)`` yields (oldest first). Windows
    judged at their end (``lt``, ``lte``, ``eq``, ``neq``) that end after ``now`` are not
    over yet: they are judged by a later run."""
    kinds = correlation_kinds(ruleset)
    if not ruleset.correlations or not kinds:
        return []
    engine = CorrelationEngine(ruleset)
    refs = {ref for spec in ruleset.correlations for ref in spec.rules}
    hits: list[tuple[Mapping[str, Any], frozenset[str]]] = []
    matches: list[CorrelationMatch] = []
    for event in read(kinds):
        fired = frozenset(r.rule_id for r in ruleset.fired(event) if r.rule_id in refs)
        if not fired:
            continue
        hits.append((event, fired))
        matches.extend(engine.feed(fired, event))
    specs = {spec.corr_id: spec for spec in ruleset.correlations}
    horizon = (now or datetime.now(UTC)).timestamp()
    matches.extend(
        match
        for match in engine.flush()
        if match.last_seen <= horizon or _judged_on_arrival(specs[match.corr_id])
    )
    return [
        _finding(match, specs[match.corr_id], _contributing(match, specs[match.corr_id], hits),
                 max_event_ids)
        for match in matches
    ]  # fmt: skip


def _judged_on_arrival(spec: CorrelationSpec) -> bool:
    return not spec.condition or spec.condition[0][0] in ("gt", "gte")


def _contributing(
    match: CorrelationMatch,
    spec: CorrelationSpec,
    hits: list[tuple[Mapping[str, Any], frozenset[str]]],
) -> list[Mapping[str, Any]]:
    """The events of the match's group and window that fired one of its rules."""
    group = dict(match.group)
    wanted = set(spec.rules)
    return [
        event
        for event, fired in hits
        if fired & wanted
        and match.first_seen <= (event_time(event) or 0.0) <= match.last_seen
        and all(_group_value(event, spec, name, fired) == v for name, v in group.items())
    ]


def _group_value(
    event: Mapping[str, Any], spec: CorrelationSpec, name: str, fired: frozenset[str]
) -> Any:
    aliases = spec.aliases.get(name, {})
    for rule_id in fired:
        if rule_id in aliases:
            return get_path(event, aliases[rule_id])
    value = get_path(event, name)
    return tuple(value) if isinstance(value, list) else value


def _finding(
    match: CorrelationMatch,
    spec: CorrelationSpec,
    events: list[Mapping[str, Any]],
    max_event_ids: int,
) -> Finding:
    group = dict(match.group)
    values = [str(v) for v in group.values()]
    host = str(group.get("source.ip") or group.get("host.name") or (values[0] if values else ""))
    zone = None
    if events:
        last = events[-1]
        zone = get_path(last, "sekimori.zone.source") or get_path(last, "sekimori.zone.host")
    counted = f" distinct {spec.field} values" if spec.type == "value_count" else " events"
    where = ", ".join(f"{k}={v}" for k, v in group.items())
    return Finding(
        rule_id=spec.corr_id,
        title=spec.title,
        level=spec.level,
        tags=spec.tags,
        host=host,
        zone=str(zone) if zone else None,
        entity="->".join(values) or spec.corr_id,
        count=match.count,
        first_seen=_moment(match.first_seen),
        last_seen=_moment(match.last_seen),
        event_ids=tuple(_ids(events))[-max_event_ids:],
        description=(
            f"{match.count}{counted} within {spec.timespan:g} s for {where}"
            f" ({_moment(match.first_seen):%H:%M:%S}-{_moment(match.last_seen):%H:%M:%S} UTC)."
            f" {spec.description}"
        ).strip(),
    )


def _ids(events: Iterable[Mapping[str, Any]]) -> Iterator[str]:
    seen: set[str] = set()
    for event in events:
        event_id = get_path(event, "event.id")
        if isinstance(event_id, str) and event_id not in seen:
            seen.add(event_id)
            yield event_id


def _moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
