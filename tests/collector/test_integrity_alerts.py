"""Integrity of the monitoring itself: telemetry gaps and silent agents become alerts."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from collector.alerts import AlertManager
from collector.pipeline import IngestPipeline
from collector.registry import Registry
from collector.silence import SILENCE_RULE_ID, check_silence
from collector.store.sqlite import SqliteStore
from collector.zones import example_zones_path, load_zones
from detections import default_rules_dir, load_rules
from tests.conftest import batch, build_event

AGENT = "0123456789abcdef0123456789abcdef"


def test_a_gap_event_raises_a_telemetry_gap_alert(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    pipeline = IngestPipeline(
        store,
        load_zones(example_zones_path()),
        load_rules([default_rules_dir()]),
        AlertManager(store),
    )
    gap = build_event(
        "telemetry_gap",
        seq=120,
        agent_id=AGENT,
        event__action="telemetry_gap",
        sekimori__gap__first_seq=10,
        sekimori__gap__last_seq=119,
        sekimori__gap__count=110,
        sekimori__gap__reason="spool_full",
    )
    answer = pipeline.ingest(json.dumps(batch([gap], agent_id=AGENT)).encode())
    assert answer["accepted"] == 1
    (alert,) = store.list_alerts()
    assert alert.title == "Agent Telemetry Gap (Events Dropped)"
    assert alert.event_ids == (gap["event"]["id"],)
    store.close()


def _registry_with_agent(tmp_path: Path, last_seen: float) -> Registry:
    registry = Registry(tmp_path / "registry.db")
    token = registry.create_token(ttl=600, uses=1, zone="internet")
    registry.redeem_token(token, AGENT, "pc-07")
    with registry.tx() as conn:
        conn.execute("UPDATE agents SET last_seen=? WHERE id=?", (last_seen, AGENT))
    return registry


def test_a_silent_agent_raises_one_alert_per_silent_spell(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    now = datetime.now(UTC)
    registry = _registry_with_agent(tmp_path, (now - timedelta(minutes=12)).timestamp())
    (alert,) = check_silence(registry, store, threshold=timedelta(minutes=5), now=now)
    assert alert.rule_id == SILENCE_RULE_ID
    assert (alert.host, alert.zone, alert.level) == ("pc-07", "internet", "high")
    later = now + timedelta(minutes=1)
    (again,) = check_silence(registry, store, threshold=timedelta(minutes=5), now=later)
    assert again.id == alert.id  # the same spell: no second alert
    assert len(store.list_alerts()) == 1
    store.set_alert_status(alert.id, "closed", "benign")
    assert check_silence(registry, store, threshold=timedelta(minutes=5), now=later) == []
    # heard from again, then silent again: a new spell, a new alert
    with registry.tx() as conn:
        conn.execute("UPDATE agents SET last_seen=? WHERE id=?", (later.timestamp(), AGENT))
    assert check_silence(registry, store, threshold=timedelta(minutes=5), now=later) == []
    (spell2,) = check_silence(
        registry, store, threshold=timedelta(minutes=5), now=later + timedelta(minutes=6)
    )
    assert spell2.id != alert.id
    registry.close()
    store.close()


def test_revoked_and_fresh_agents_are_not_silent(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "s.db")
    registry = _registry_with_agent(tmp_path, time.time())
    assert check_silence(registry, store, threshold=timedelta(minutes=5)) == []
    with registry.tx() as conn:
        conn.execute("UPDATE agents SET last_seen=? WHERE id=?", (time.time() - 3600, AGENT))
    registry.revoke(AGENT, "decommissioned")
    assert check_silence(registry, store, threshold=timedelta(minutes=5)) == []
    registry.close()
    store.close()
