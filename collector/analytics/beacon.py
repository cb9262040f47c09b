"""C2 beacon scoring over ``network_flow`` events, in the style of RITA (Active Countermeasures).

Per (source.ip, destination.ip[, destination.port]) pair, over the connections in the window:

- timestamp score: the intervals between connection starts should be regular. Mean of a
  Bowley-skewness score (``1 - |(Q1 + Q3 - 2 Q2) / (Q3 - Q1)|``) and a MAD score
  (``(median - MAD) / median``, floored at 0), as RITA computes them; the skew counts as 0
  when the IQR is under half the median (RITA: under 10 s), i.e. too tight for skew to mean
  anything, so jitter of up to about ±50 % costs only through the MAD;
- data-size score: the same two statistics over the initiator's bytes per connection (IQR
  floor: half the median, at least RITA's 10 bytes);
- connection-count score: ``min(1, connections / (2 * min_connections))``;
- combined: the weighted mean (``BeaconThresholds``); a pair alerts when the combined score
  and the timestamp score alone both reach their thresholds.

Every pair is scored; a finding is raised only for pairs whose destination is outside every
internal zone (``external`` or ``unmapped``) and plays no infrastructure role in zones.yaml
(the security-cloud proxy, the designated DNS/NTP/mail servers, the collector, ...): a regular
heartbeat to a collector, an NTP server or the proxy is not a beacon, a regular connection
straight to the internet is.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from agents.schema import get_path
from collector.analytics.config import BeaconThresholds
from collector.analytics.spells import Finding

BEACON_RULE_ID: Final = "sekimori-beacon"
BEACON_TITLE: Final = "C2 Beaconing Suspected"
BEACON_TAGS: Final = ("attack.command_and_control", "attack.t1071", "attack.t1573")
OUTSIDE_ZONES: Final = frozenset({"external", "unmapped"})
_EPOCH: Final = pd.Timestamp(0, tz="UTC")
_COLUMNS: Final = (
    "event_id", "src", "sport", "dst", "dport", "transport", "start", "end", "bytes",
    "src_zone", "dst_zone", "dst_role",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class BeaconScore:
    src: str
    dst: str
    dport: int | None  # None when grouping by address pair only
    transport: str
    connections: int
    interval: float  # median seconds between connection starts
    timestamp_score: float
    datasize_score: float
    count_score: float
    score: float
    median_bytes: float
    first_seen: datetime
    last_seen: datetime
    event_ids: tuple[str, ...]
    src_zone: str | None
    dst_zone: str | None
    dst_role: str | None

    @property
    def outside(self) -> bool:
        """Destination outside every internal zone and not designated infrastructure (any
        zones.yaml role: the security-cloud proxy, DNS, NTP, mail, the collector, ...)."""
        return self.dst_zone in OUTSIDE_ZONES and self.dst_role is None


def flows_frame(events: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per distinct connection (a flow's updates and its end collapse to one)."""
    rows = []
    for event in events:
        src, dst = get_path(event, "source.ip"), get_path(event, "destination.ip")
        start = get_path(event, "event.start") or get_path(event, "@timestamp")
        if not isinstance(src, str) or not isinstance(dst, str) or not start:
            continue
        rows.append(
            (
                str(get_path(event, "event.id")),
                src,
                get_path(event, "source.port"),
                dst,
                get_path(event, "destination.port"),
                str(get_path(event, "network.transport") or ""),
                start,
                get_path(event, "event.end") or get_path(event, "@timestamp"),
                _bytes(event),
                get_path(event, "sekimori.zone.source"),
                get_path(event, "sekimori.zone.destination"),
                get_path(event, "sekimori.role.destination"),
            )
        )
    frame = pd.DataFrame(rows, columns=list(_COLUMNS))
    if frame.empty:
        return frame
    frame["start"] = pd.to_datetime(frame["start"], utc=True, format="ISO8601")
    frame["end"] = pd.to_datetime(frame["end"], utc=True, format="ISO8601")
    frame = frame.sort_values(["start", "end"], kind="stable")
    key = ["src", "sport", "dst", "dport", "transport", "start"]
    return frame.drop_duplicates(subset=key, keep="last").reset_index(drop=True)


def _bytes(event: Mapping[str, Any]) -> int:
    value = get_path(event, "source.bytes")
    if not isinstance(value, int):
        value = get_path(event, "network.bytes")
    return value if isinstance(value, int) else 0


def bowley_score(values: np.ndarray[Any, Any], min_iqr: float) -> tuple[float, float]:
    """(skewness, 1 - |skewness|); skewness is 0 when the IQR is under ``min_iqr`` or the
    median sits on a quartile (RITA's rule)."""
    q1, q2, q3 = (float(q) for q in np.percentile(values, [25, 50, 75]))
    den = q3 - q1
    skew = 0.0
    if den >= min_iqr and q1 != q2 != q3:
        skew = (q1 + q3 - 2 * q2) / den
    return skew, 1.0 - abs(skew)


def mad_score(
    values: np.ndarray[Any, Any], default: float, min_median: float
) -> tuple[float, float]:
    """(median absolute deviation, (median - MAD) / median floored at 0; ``default`` when
    the median is under ``min_median``)."""
    median = float(np.median(values))
    mad = float(np.median(np.abs(values - median)))
    score = default if median < min_median else (median - mad) / median
    return mad, max(0.0, score)


def score_pair(
    starts: np.ndarray[Any, Any], sizes: np.ndarray[Any, Any], t: BeaconThresholds
) -> tuple[float, float, float, float, float] | None:
    """(timestamp, data-size, count, combined score, median interval) for one pair's sorted
    connection start times (epoch seconds) and sizes, or None with too few intervals."""
    intervals = np.diff(starts)
    intervals = intervals[intervals > 0]
    if len(intervals) < 3:
        return None
    median_interval = float(np.median(intervals))
    _, ts_skew = bowley_score(intervals, 0.5 * median_interval)
    _, ts_mad = mad_score(intervals, 1.0, 1e-3)
    ts_score = (ts_skew + ts_mad) / 2
    _, ds_skew = bowley_score(sizes, max(10.0, 0.5 * float(np.median(sizes))))
    _, ds_mad = mad_score(sizes, 0.0, 1.0)
    ds_score = (ds_skew + ds_mad) / 2
    count_score = min(1.0, len(starts) / (2 * t.min_connections))
    score = (
        t.timestamp_weight * ts_score + t.datasize_weight * ds_score + t.count_weight * count_score
    )
    return ts_score, ds_score, count_score, round(score, 3), median_interval


def score_beacons(frame: pd.DataFrame, t: BeaconThresholds) -> list[BeaconScore]:
    """Score every pair with at least ``min_connections`` connections (highest score first)."""
    if frame.empty:
        return []
    keys = ["src", "dst", "transport"] + (["dport"] if t.per_port else [])
    scores: list[BeaconScore] = []
    for key, group in frame.groupby(keys, sort=True, dropna=False):
        if len(group) < t.min_connections:
            continue
        starts = (group["start"] - _EPOCH).dt.total_seconds().to_numpy()
        sizes = group["bytes"].to_numpy(dtype=float)
        result = score_pair(starts, sizes, t)
        if result is None:
            continue
        ts_score, ds_score, count_score, score, interval = result
        values = dict(zip(keys, key, strict=True))
        dport = values.get("dport")
        last = group.iloc[-1]
        scores.append(
            BeaconScore(
                src=str(values["src"]),
                dst=str(values["dst"]),
                dport=None if dport is None or pd.isna(dport) else int(dport),
                transport=str(values["transport"]),
                connections=len(group),
                interval=interval,
                timestamp_score=round(ts_score, 3),
                datasize_score=round(ds_score, 3),
                count_score=round(count_score, 3),
                score=score,
                median_bytes=float(np.median(sizes)),
                first_seen=group["start"].min().to_pydatetime(),
                last_seen=group["end"].max().to_pydatetime(),
                event_ids=tuple(group["event_id"].tail(t.max_event_ids)),
                src_zone=_opt(last["src_zone"]),
                dst_zone=_opt(last["dst_zone"]),
                dst_role=_opt(last["dst_role"]),
            )
        )
    return sorted(scores, key=lambda s: (-s.score, s.src, s.dst))


def _opt(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and np.isnan(value)) else str(value)


def beacon_findings(scores: Iterable[BeaconScore], t: BeaconThresholds) -> list[Finding]:
    """Findings for pairs at or above the score threshold whose destination is outside."""
    findings = []
    for s in scores:
        if s.score < t.score or s.timestamp_score < t.min_timestamp_score or not s.outside:
            continue
        port = f":{s.dport}" if s.dport is not None else ""
        findings.append(
            Finding(
                rule_id=BEACON_RULE_ID,
                title=BEACON_TITLE,
                level="high",
                tags=BEACON_TAGS,
                host=s.src,
                zone=s.src_zone,
                entity=f"{s.src}->{s.dst}{port}",
                count=s.connections,
                first_seen=s.first_seen,
                last_seen=s.last_seen,
                event_ids=s.event_ids,
                description=(
                    f"{s.connections} {s.transport} connections from {s.src} to {s.dst}{port}"
                    f" ({s.dst_zone}, not through the security-cloud proxy) every"
                    f" {s.interval:.1f} s (median); beacon score {s.score:.2f} (timestamp"
                    f" {s.timestamp_score:.2f}, data size {s.datasize_score:.2f}, count"
                    f" {s.count_score:.2f}), median {s.median_bytes:.0f} bytes sent per"
                    " connection: find the process on the source host that makes them"
                ),
            )
        )
    return findings
