"""Streaming correlation: event_count, value_count, temporal, temporal_ordered (Sigma v2).

Feed every event (or every rule hit) in; correlation matches come out. Semantics:

- Windows slide: a window is the ``timespan`` before the newest event of its group, so a burst
  that straddles any fixed boundary is still seen. After a correlation fires for a group, that
  group's state is reset (one alert per burst, not one per further event).
- ``gt``/``gte`` conditions are checked on every event; conditions that can only be judged once
  a window is over (``lt``, ``lte``, ``eq``, ``neq``) are checked when the group's window closes
  (the first event after it, or :meth:`CorrelationEngine.flush`).
- ``group-by`` values are read per referenced rule through ``aliases``; an event missing a
  group-by field is not correlated (counted in ``stats["missing_group_field"]``).
- Out-of-order events within ``lateness`` seconds are reordered through a small buffer; older
  ones are counted in ``stats["late_events"]`` and dropped.
- Memory is bounded: state older than the timespan expires; each group keeps at most
  ``max_per_key`` timestamps (the oldest dropped, ``stats["state_capped"]`` counts it).
- Chained correlations: a fired correlation is an input "rule hit" for correlations naming it.
"""

from __future__ import annotations

import heapq
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from detections.compiler import make_getter
from detections.correlation_spec import CorrelationSpec
from detections.event_time import event_time
from detections.ruleset import RuleSet


@dataclass(frozen=True, slots=True, kw_only=True)
class CorrelationMatch:
    corr_id: str
    title: str
    level: str
    tags: tuple[str, ...]
    description: str
    type: str
    group: tuple[tuple[str, Any], ...]  # (group-by field, value)
    count: int  # events (event_count), distinct values (value_count), rules (temporal)
    first_seen: float
    last_seen: float


@dataclass(slots=True)
class _State:
    times: deque[float] = field(default_factory=deque)
    values: deque[tuple[float, Any]] = field(default_factory=deque)
    seen: dict[str, float] = field(default_factory=dict)  # temporal: rule id -> last time
    chain: dict[int, float] = field(default_factory=dict)  # ordered: step -> chain start
    start: float | None = None  # window start for conditions judged at window end
    last: float = 0.0  # newest event time (for expiry)


class CorrelationEngine:
    """Evaluates a rule set's correlations over a stream of events."""

    def __init__(
        self,
        ruleset: RuleSet,
        *,
        lateness: float = 0.0,
        max_per_key: int = 10_000,
        correlations: Iterable[CorrelationSpec] | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.lateness = lateness
        self.max_per_key = max_per_key
        self.specs = list(ruleset.correlations if correlations is None else correlations)
        self.stats: Counter[str] = Counter()
        self._by_ref: dict[str, list[CorrelationSpec]] = {}
        for spec in self.specs:
            for ref in dict.fromkeys(spec.rules):
                self._by_ref.setdefault(ref, []).append(spec)
        self._state: dict[tuple[str, tuple[Any, ...]], _State] = {}
        self._buffer: list[tuple[float, int, tuple[str, ...], Mapping[str, Any]]] = []
        self._seq = count()
        self._ticks = count(1)
        self._spec_by_id = {spec.corr_id: spec for spec in self.specs}
        self._watermark = float("-inf")
        self._newest = float("-inf")

    def process(self, event: Mapping[str, Any]) -> list[CorrelationMatch]:
        """Match ``event`` against the rule set and feed the hits to the correlations."""
        if not self._by_ref:
            return []
        fired = tuple(r.rule_id for r in self.ruleset.fired(event) if r.rule_id in self._by_ref)
        return self.feed(fired, event) if fired else self._release()

    def feed(
        self, rule_ids: Iterable[str], event: Mapping[str, Any], when: float | None = None
    ) -> list[CorrelationMatch]:
        """Feed rule hits for one event (``when``: its time; read from the event if None)."""
        ts = when if when is not None else event_time(event)
        if ts is None:
            ts = max(self._newest, 0.0)
            self.stats["no_timestamp"] += 1
        if ts < self._watermark:
            self.stats["late_events"] += 1
            return []
        self._newest = max(self._newest, ts)
        heapq.heappush(self._buffer, (ts, next(self._seq), tuple(rule_ids), event))
        return self._release()

    def flush(self) -> list[CorrelationMatch]:
        """End of stream: process buffered events and judge every open window."""
        self._newest = float("inf")
        out = self._release()
        for (corr_id, key), state in list(self._state.items()):
            spec = self._spec_by_id[corr_id]
            if state.start is not None:
                out.extend(self._close_window(spec, key, state, state.start + spec.timespan))
        return out

    def _release(self) -> list[CorrelationMatch]:
        limit = self._newest - self.lateness
        out: list[CorrelationMatch] = []
        while self._buffer and self._buffer[0][0] <= limit:
            ts, _, rule_ids, event = heapq.heappop(self._buffer)
            self._watermark = ts
            for rule_id in rule_ids:
                out.extend(self._dispatch(rule_id, event, ts))
        return out

    def _dispatch(self, rule_id: str, event: Mapping[str, Any], ts: float) -> list[Any]:
        out: list[CorrelationMatch] = []
        for spec in self._by_ref.get(rule_id, ()):
            key = self._group_key(spec, rule_id, event)
            if key is None:
                self.stats["missing_group_field"] += 1
                continue
            hit = self._update(spec, rule_id, key, event, ts)
            for match in hit:
                out.append(match)
                chained = dict(match.group)
                out.extend(self._dispatch(spec.corr_id, chained, match.last_seen))
        return out

    def _group_key(
        self, spec: CorrelationSpec, rule_id: str, event: Mapping[str, Any]
    ) -> tuple[Any, ...] | None:
        values: list[Any] = []
        for name in spec.group_by:
            source = spec.aliases.get(name, {}).get(rule_id, name)
            value = make_getter(source)(event)
            if value is None and source != name:
                value = make_getter(name)(event)  # a chained correlation carries alias names
            if value is None:
                return None
            values.append(value if not isinstance(value, list) else tuple(value))
        return tuple(values)

    def _update(
        self,
        spec: CorrelationSpec,
        rule_id: str,
        key: tuple[Any, ...],
        event: Mapping[str, Any],
        ts: float,
    ) -> list[CorrelationMatch]:
        state = self._state.setdefault((spec.corr_id, key), _State())
        state.last = max(state.last, ts)
        out: list[CorrelationMatch] = self._expire(ts) if next(self._ticks) % 1024 == 0 else []
        judged_at_end = spec.condition and spec.condition[0][0] not in ("gt", "gte")
        if judged_at_end and state.start is not None and ts > state.start + spec.timespan:
            out.extend(self._close_window(spec, key, state, state.start + spec.timespan))
        if judged_at_end and state.start is None:
            state.start = ts
        horizon = ts - spec.timespan
        if spec.type == "event_count":
            self._push(state.times, ts, horizon)
            current = len(state.times)
        elif spec.type == "value_count":
            value = make_getter(spec.field or "")(event)
            if value is None:
                self.stats["missing_value_field"] += 1
                return out
            self._push(state.values, (ts, value), horizon)
            current = len({v for _, v in state.values})
        elif spec.type == "temporal":
            state.seen[rule_id] = ts
            state.seen = {r: t for r, t in state.seen.items() if t >= horizon}
            current = len(state.seen)
        else:
            current = self._ordered(spec, rule_id, state, ts)
        if not judged_at_end and spec.holds(current):
            out.append(self._match(spec, key, current, self._first(state, ts), ts))
            self._state.pop((spec.corr_id, key), None)
        return out

    def _expire(self, now: float) -> list[CorrelationMatch]:
        """Drop (or, for end-judged windows, judge) groups idle for longer than the timespan."""
        out: list[CorrelationMatch] = []
        for (corr_id, key), state in list(self._state.items()):
            spec = self._spec_by_id[corr_id]
            if state.last >= now - spec.timespan:
                continue
            if state.start is not None:
                out.extend(self._close_window(spec, key, state, state.start + spec.timespan))
            else:
                self._state.pop((corr_id, key), None)
            self.stats["expired_groups"] += 1
        return out

    def _push(self, window: deque[Any], item: Any, horizon: float) -> None:
        window.append(item)
        while window and _time(window[0]) < horizon:
            window.popleft()
        if len(window) > self.max_per_key:
            window.popleft()
            self.stats["state_capped"] += 1

    def _ordered(self, spec: CorrelationSpec, rule_id: str, state: _State, ts: float) -> int:
        """Length of the longest in-order chain ending now, within the timespan."""
        best = 0
        for step in reversed(range(len(spec.rules))):
            if spec.rules[step] != rule_id:
                continue
            if step == 0:
                state.chain[0] = ts
            elif (start := state.chain.get(step - 1)) is not None and ts - start <= spec.timespan:
                state.chain[step] = max(state.chain.get(step, start), start)
        for step in range(len(spec.rules)):
            start = state.chain.get(step)
            if start is None or ts - start > spec.timespan:
                break
            best = step + 1
        return best

    def _close_window(
        self, spec: CorrelationSpec, key: tuple[Any, ...], state: _State, end: float
    ) -> list[CorrelationMatch]:
        start = state.start if state.start is not None else end
        if spec.type == "value_count":
            current = len({v for t, v in state.values if t <= end})
        else:
            current = sum(1 for t in state.times if t <= end)
        self._state.pop((spec.corr_id, key), None)
        return [self._match(spec, key, current, start, end)] if spec.holds(current) else []

    @staticmethod
    def _first(state: _State, ts: float) -> float:
        candidates = list(state.seen.values()) + list(state.chain.values())
        if state.times:
            candidates.append(state.times[0])
        if state.values:
            candidates.append(state.values[0][0])
        return min(candidates, default=ts)

    @staticmethod
    def _match(
        spec: CorrelationSpec, key: tuple[Any, ...], current: int, first: float, last: float
    ) -> CorrelationMatch:
        return CorrelationMatch(
            corr_id=spec.corr_id,
            title=spec.title,
            level=spec.level,
            tags=spec.tags,
            description=spec.description,
            type=spec.type,
            group=tuple(zip(spec.group_by, key, strict=True)),
            count=current,
            first_seen=first,
            last_seen=last,
        )


def _time(item: Any) -> float:
    return float(item[0] if isinstance(item, tuple) else item)
