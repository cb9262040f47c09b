"""When an event happened, in epoch seconds, from whichever timestamp field it carries."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

# Ours (ECS), EVTX System/TimeCreated, Sysmon UtcTime, NXLog/OTRF EventTime.
TIME_FIELDS: Final = ("@timestamp", "TimeCreated", "UtcTime", "timestamp", "EventTime")


def event_time(event: Mapping[str, Any]) -> float | None:
    for name in TIME_FIELDS:
        value = event.get(name)
        if value is None and name == "@timestamp":
            continue
        seconds = to_epoch(value)
        if seconds is not None:
            return seconds
    return None


def to_epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # Sysmon UtcTime and TimeCreated are UTC
    return parsed.timestamp()
