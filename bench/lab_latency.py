"""Action-to-alert latency per lab scenario, with a same-run transport baseline.

Builds the β′ lab once (`sekimori lab up`), then runs every scenario ``--rounds`` times. For
each run two clocks start with the action:

(a) **first event stored** — the baseline: the first event of the scenario's telemetry that
    the collector stored (a process/socket event from a host the scenario involves, or a
    sensor dns/flow event whose source is such a host), i.e. pure transport latency;
(b) **alert visible** — every expected rule's alert appeared (or was updated) in the store.

Both are store-visible times (polled every 0.1 s / 0.2 s). The ratio b/a shows what detection
(correlation windows, analytics runs, the action's own duration) adds on top of delivery.
Needs root. Rounds start at least ``--round-gap`` seconds (default 90) apart: more than the
lab's 60 s analytics window plus the longest scenario, so each run starts with the previous
run's flows out of the window and opens a fresh analytic spell (otherwise the next beacon run
would update the old alert after one check-in: too optimistic).

    sudo .venv/bin/python bench/lab_latency.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agents.schema import get_path
from collector.lab import session
from collector.lab.runner import run_scenario
from collector.lab.scenarios import SCENARIOS, Parts, Scenario
from collector.models import EventQuery

IGNORED_KINDS = {"heartbeat", "telemetry_gap"}


def first_event(lab: session.Lab, scenario: Scenario, since: datetime, out: list[float]) -> None:
    """Poll until the scenario's first event is stored; append seconds since ``since``."""
    parts = Parts.of(lab.topology)
    hosts = set(scenario.hosts(parts))
    addresses = {parts.host(p).address for p in scenario.parts}
    collector = lab.state.collector_url.split("//")[1].split(":")[0]
    store = lab.store()
    deadline = time.monotonic() + scenario.timeout
    try:
        while time.monotonic() < deadline:
            for event in store.query_events(EventQuery(since=since, limit=100_000)):
                kind = get_path(event, "sekimori.kind")
                if kind in IGNORED_KINDS or get_path(event, "destination.ip") == collector:
                    continue
                mine = get_path(event, "host.name") in hosts and kind != "network_flow"
                sensed = kind in ("dns", "network_flow") and (
                    get_path(event, "source.ip") in addresses
                )
                if mine or sensed:
                    out.append((datetime.now(UTC) - since).total_seconds())
                    return
            time.sleep(0.1)
    finally:
        store.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--data-dir", type=Path, default=Path("/var/lib/sekimori/lab-bench"))
    parser.add_argument("--scenario", action="append", default=[])
    parser.add_argument("--round-gap", type=float, default=90.0, metavar="S")
    args = parser.parse_args()
    chosen = [s for s in SCENARIOS if not args.scenario or s.name in args.scenario]
    lab = session.up(args.data_dir)
    alert_s: dict[str, list[float]] = {s.name: [] for s in chosen}
    event_s: dict[str, list[float]] = {s.name: [] for s in chosen}
    missed: dict[str, int] = {s.name: 0 for s in chosen}
    try:
        round_start = 0.0
        for _ in range(args.rounds):
            time.sleep(max(0.0, round_start + args.round_gap - time.monotonic()))
            round_start = time.monotonic()
            for scenario in chosen:
                since = datetime.now(UTC)
                watcher = threading.Thread(
                    target=first_event, args=(lab, scenario, since, event_s[scenario.name])
                )
                watcher.start()
                result = run_scenario(lab, scenario, settle=0.5)
                watcher.join()
                if result.missed:
                    missed[scenario.name] += 1
                else:
                    alert_s[scenario.name].append(max(s.seconds for s in result.fired.values()))
    finally:
        session.down(args.data_dir)
    rows: list[dict[str, Any]] = []
    print(f"{'scenario':<18} {'n':>2} {'alert med':>9} {'p95':>6} {'event med':>9} {'ratio':>6}")
    for scenario in chosen:
        a, e = alert_s[scenario.name], event_s[scenario.name]
        row: dict[str, Any] = {
            "scenario": scenario.name,
            "runs": len(a),
            "missed": missed[scenario.name],
        }
        if a and e:
            row |= {
                "alert_median_s": round(statistics.median(a), 2),
                "alert_p95_s": round(pct(a, 0.95), 2),
                "first_event_median_s": round(statistics.median(e), 2),
                "ratio": round(statistics.median(a) / max(statistics.median(e), 1e-3), 1),
            }
            print(
                f"{scenario.name:<18} {len(a):>2} {row['alert_median_s']:>9.2f} "
                f"{row['alert_p95_s']:>6.2f} {row['first_event_median_s']:>9.2f} "
                f"{row['ratio']:>6.1f}"
            )
        else:
            print(f"{scenario.name:<18} {len(a):>2} missed={missed[scenario.name]}")
        rows.append(row)
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
