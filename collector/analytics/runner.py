"""The periodic analytics job: read the window from the store, score, raise alerts.

``AnalyticsRunner.run`` is what the collector calls every ``AnalyticsConfig.interval``
seconds (in a worker thread: the store blocks). Each run reads the last ``window`` of
``network_flow`` and ``dns`` events through the Store protocol, scores beacons and DNS
tunnels, evaluates the rule set's Sigma correlation rules (scans) over the same window, and
folds the findings into alerts, one per spell (:mod:`collector.analytics.spells`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from collector.analytics.beacon import beacon_findings, flows_frame, score_beacons
from collector.analytics.config import AnalyticsConfig
from collector.analytics.correlate import correlation_findings
from collector.analytics.dnstunnel import dns_findings, queries_frame, score_domains
from collector.analytics.spells import AlertSpells, Finding
from collector.models import Alert, EventQuery
from collector.store.base import Store
from detections import RuleSet

log = logging.getLogger("sekimori.collector.analytics")


class AnalyticsRunner:
    """Holds the spells between runs; one instance per collector."""

    def __init__(self, store: Store, config: AnalyticsConfig, rules: RuleSet | None = None) -> None:
        self.store = store
        self.config = config
        self.rules = rules
        self.spells = AlertSpells(store, config.window)

    def findings(self, now: datetime | None = None) -> list[Finding]:
        """Everything the window shows, without touching alerts."""
        now = now or datetime.now(UTC)
        since = now - self.config.window
        cfg = self.config
        found = beacon_findings(
            score_beacons(flows_frame(self._read(("network_flow",), since)), cfg.beacon),
            cfg.beacon,
        )
        found += dns_findings(
            score_domains(queries_frame(self._read(("dns",), since)), cfg.dns), cfg.dns
        )
        if cfg.correlations and self.rules is not None and self.rules.correlations:
            found += correlation_findings(
                self.rules, lambda kinds: self._read(kinds, since), now=now
            )
        return found

    def run(self, now: datetime | None = None) -> list[Alert]:
        """One pass: returns the alerts raised or refreshed (closed spells are left alone)."""
        now = now or datetime.now(UTC)
        touched: dict[str, Alert] = {}  # a spell seen twice in one run is one alert
        for finding in self.findings(now):
            alert = self.spells.record(finding)
            if alert is not None:
                touched[alert.id] = alert
        self.spells.forget(now - 2 * self.config.window)
        if touched:
            log.info("analytics raised or refreshed %d alert(s)", len(touched))
        return list(touched.values())

    def _read(self, kinds: tuple[str, ...], since: datetime) -> Iterator[Mapping[str, Any]]:
        # No upper bound: an agent whose clock runs a little ahead is still seen.
        return self.store.iter_events(EventQuery(kinds=kinds, since=since))
