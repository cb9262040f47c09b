"""Settings of the periodic network analytics (beacons, DNS tunnelling, scan correlations).

Defaults are documented against RITA's (Active Countermeasures) in docs/analytics.md. The lab
shortens them with :func:`dataclasses.replace` (a two-second interval, a ten-minute window,
small minimum counts); production keeps the defaults.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from agents.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class BeaconThresholds:
    """Beacon scoring over ``network_flow`` events, per (source, destination[, port]) pair.

    ``min_connections``: pairs with fewer distinct connections are not scored (RITA v5:
    ``unique_connection_threshold: 4``; ours is higher because our window is one hour, not a
    day). ``score``: alert at or above this combined score (0..1; RITA reports from 0.5).
    ``min_timestamp_score``: and only when the intervals alone are this regular (RITA has no
    such gate; its duration and histogram subscores, which need hours of data, play that part).
    ``*_weight``: the combined score is the weighted mean of the timestamp, data-size and
    connection-count subscores (weights must sum to 1). ``per_port``: group by destination port
    too (RITA groups by address pair only). ``max_event_ids``: contributing event ids kept per
    alert.
    """

    min_connections: int = 10
    score: float = 0.75
    min_timestamp_score: float = 0.8
    timestamp_weight: float = 0.5
    datasize_weight: float = 0.25
    count_weight: float = 0.25
    per_port: bool = True
    max_event_ids: int = 50

    def __post_init__(self) -> None:
        if self.min_connections < 4:
            raise ConfigError(
                "beacon min_connections must be at least 4 (three intervals are needed)"
            )
        total = self.timestamp_weight + self.datasize_weight + self.count_weight
        weights = (self.timestamp_weight, self.datasize_weight, self.count_weight)
        if abs(total - 1.0) > 1e-9 or min(weights) < 0:
            raise ConfigError(f"beacon score weights must be >= 0 and sum to 1, not {total}")
        if not 0 < self.score <= 1 or not 0 <= self.min_timestamp_score <= 1:
            raise ConfigError(
                f"beacon score thresholds must be in (0, 1], not {self.score},"
                f" {self.min_timestamp_score}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class DnsTunnelThresholds:
    """DNS-tunnelling scoring over ``dns`` query events, per (source, registered domain).

    ``min_unique_subdomains``: fewer unique names under one domain are not scored (RITA:
    ``c2_subdomain_threshold: 100``). ``entropy_low``/``entropy_high``: mean Shannon entropy
    (bits per character) of the subdomain part that scores 0 / 1. ``length_low``/
    ``length_high``: mean subdomain length (characters) that scores 0 / 1. ``score``: alert at
    or above this combined score (0.6 entropy + 0.25 length + 0.15 TXT/NULL share).
    """

    min_unique_subdomains: int = 100
    score: float = 0.5
    entropy_low: float = 3.0
    entropy_high: float = 4.0
    length_low: float = 10.0
    length_high: float = 30.0
    max_event_ids: int = 50

    def __post_init__(self) -> None:
        if self.min_unique_subdomains < 1:
            raise ConfigError("dns min_unique_subdomains must be at least 1")
        if self.entropy_high <= self.entropy_low or self.length_high <= self.length_low:
            raise ConfigError("dns *_high thresholds must be above the *_low ones")
        if not 0 < self.score <= 1:
            raise ConfigError(f"dns score threshold must be in (0, 1], not {self.score}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AnalyticsConfig:
    """``enabled``: run the job in the collector. ``interval``: seconds between runs.
    ``window``: how far back each run looks (also the gap that ends an alert's spell).
    ``correlations``: also evaluate the rule set's Sigma correlation rules (scan detection)
    over the window's events on each run."""

    enabled: bool = True
    interval: float = 60.0
    window: timedelta = timedelta(hours=1)
    beacon: BeaconThresholds = field(default_factory=BeaconThresholds)
    dns: DnsTunnelThresholds = field(default_factory=DnsTunnelThresholds)
    correlations: bool = True

    def __post_init__(self) -> None:
        if self.interval <= 0:
            raise ConfigError(f"analytics interval must be positive, not {self.interval}")
        if self.window <= timedelta(0):
            raise ConfigError(f"analytics window must be positive, not {self.window}")
