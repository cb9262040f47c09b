"""Network analytics beyond single events: beacon scoring, DNS-tunnelling scoring and Sigma
correlation rules (scans) over a sliding window of stored events, raised as ordinary alerts.

from collector.analytics.runner import AnalyticsRunner   # imports pandas: import it lazily
runner = AnalyticsRunner(store, AnalyticsConfig(), rules)
runner.run()        # one pass; the collector calls it every AnalyticsConfig.interval seconds

See docs/analytics.md for what each analytic computes and how its defaults compare with RITA.
"""

from __future__ import annotations

from collector.analytics.config import AnalyticsConfig, BeaconThresholds, DnsTunnelThresholds

__all__ = ["AnalyticsConfig", "BeaconThresholds", "DnsTunnelThresholds"]
