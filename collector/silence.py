"""Agent silence: an enrolled, unrevoked agent not heard from for longer than a threshold
raises an "agent silent" alert (β′ detection #8: a quiet agent may be a tampered one).

One alert per silent spell: while the agent stays silent the open alert is kept (its
last_seen moves with each check); once it is heard again and silent again, a new spell gets a
new alert. Agents send a heartbeat every minute by default, so the default threshold of five
minutes means several missed heartbeats.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Final

from collector.alerts import alert_id_for
from collector.models import Alert
from collector.registry import AgentRecord, Registry
from collector.store.base import Store

SILENCE_RULE_ID: Final = "sekimori-agent-silence"
SILENCE_TITLE: Final = "Agent Silent (No Telemetry or Heartbeat)"
DEFAULT_THRESHOLD: Final = timedelta(minutes=5)


def _entity(agent: AgentRecord) -> str:
    return agent.name or agent.id


def check_silence(
    registry: Registry,
    store: Store,
    *,
    threshold: timedelta = DEFAULT_THRESHOLD,
    now: datetime | None = None,
) -> list[Alert]:
    """Raise or refresh silence alerts; returns the alerts touched."""
    now = now or datetime.now(UTC)
    touched: list[Alert] = []
    for agent in registry.agents():
        if agent.revoked is not None or agent.last_seen is None:
            continue
        last_seen = datetime.fromtimestamp(agent.last_seen, UTC)
        if now - last_seen <= threshold:
            continue
        entity = _entity(agent)
        spell_id = alert_id_for(SILENCE_RULE_ID, entity, f"{agent.id}@{agent.last_seen}")
        existing = store.get_alert(spell_id)
        if existing is not None and existing.status == "closed":
            continue  # an analyst closed this spell: do not reopen it
        if existing is not None:
            alert = replace(existing, last_seen=now)
        else:
            alert = Alert(
                id=spell_id,
                rule_id=SILENCE_RULE_ID,
                title=SILENCE_TITLE,
                level="high",
                tags=("sekimori.integrity",),
                host=entity,
                zone=agent.zone,
                entity=entity,
                count=1,
                first_seen=now,
                last_seen=now,
                event_ids=(),
                description=(
                    f"agent {agent.id} was last heard from at {last_seen:%Y-%m-%d %H:%M:%S} UTC,"
                    f" more than {threshold} ago: check the host is up, the agent running"
                    " and its network path to the collector open"
                ),
            )
        store.upsert_alert(alert)
        touched.append(alert)
    return touched
