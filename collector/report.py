"""The incident timeline as a picture: one self-contained HTML page with an SVG swimlane.

Lanes (process, network, integrity, alerts, triage) run left to right in time; every mark has
a hover title; below the chart, the alerts and triage steps are listed in order. No script,
no external resource: the page can be attached to an incident report as it is. Every string
that came from an event is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from html import escape
from typing import Final

from collector.timeline import TimelineEntry

LANES: Final = ("process", "network", "integrity", "alert", "triage")
LANE_OF_KIND: Final = {
    "process_start": "process",
    "process_end": "process",
    "network_connection": "network",
    "network_listen": "network",
    "dns": "network",
    "network_flow": "network",
    "telemetry_gap": "integrity",
    "heartbeat": "integrity",
}
COLOURS: Final = {
    "process": "#4c78a8",
    "network": "#54a24b",
    "integrity": "#b279a2",
    "alert": "#e45756",
    "triage": "#17becf",
}
WIDTH, LANE_H, LEFT, TOP = 1100, 46, 90, 30


def _lane(entry: TimelineEntry) -> str:
    if entry.kind != "event":
        return entry.kind
    return LANE_OF_KIND.get(entry.category, "process")


def _x(at: datetime, start: datetime, span: float) -> float:
    return LEFT + (WIDTH - LEFT - 20) * ((at - start).total_seconds() / span)


def _svg(entries: Sequence[TimelineEntry]) -> str:
    start, end = entries[0].at, entries[-1].at
    span = max((end - start).total_seconds(), 1.0)
    height = TOP + LANE_H * len(LANES) + 30
    parts = [f'<svg width="{WIDTH}" height="{height}" role="img" aria-label="timeline">']
    for i, lane in enumerate(LANES):
        y: float = TOP + i * LANE_H
        parts.append(
            f'<rect x="{LEFT}" y="{y}" width="{WIDTH - LEFT - 20}" height="{LANE_H - 6}"'
            f' fill="#f5f5f5"/><text x="8" y="{y + LANE_H / 2}" font-size="13">{lane}</text>'
        )
    for entry in entries:
        lane = _lane(entry)
        y = TOP + LANES.index(lane) * LANE_H + (LANE_H - 6) / 2
        x = _x(entry.at, start, span)
        tip = escape(f"{entry.at:%H:%M:%S.%f} {entry.summary}"[:400])
        colour = COLOURS[lane]
        if lane == "alert":
            shape = (
                f'<polygon points="{x},{y - 9} {x + 9},{y} {x},{y + 9} {x - 9},{y}"'
                f' fill="{colour}">'
            )
            parts.append(f"{shape}<title>{tip}</title></polygon>")
        elif lane == "triage":
            parts.append(
                f'<circle cx="{x}" cy="{y}" r="6" fill="{colour}"><title>{tip}</title></circle>'
            )
        else:
            parts.append(
                f'<rect x="{x - 1}" y="{y - 12}" width="2" height="24" fill="{colour}"'
                f' opacity="0.6"><title>{tip}</title></rect>'
            )
    axis_y = TOP + LANE_H * len(LANES) + 14
    for label_at, anchor in ((start, "start"), (end, "end")):
        x = _x(label_at, start, span)
        parts.append(
            f'<text x="{x}" y="{axis_y}" font-size="12" text-anchor="{anchor}">'
            f"{label_at:%Y-%m-%d %H:%M:%S} UTC</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def timeline_html(title: str, entries: Sequence[TimelineEntry]) -> str:
    """A complete HTML page for the given entries (oldest first)."""
    rows = "".join(
        f"<tr class='{e.kind}'><td>{e.at:%Y-%m-%d %H:%M:%S.%f}</td><td>{e.kind}</td>"
        f"<td>{escape(e.summary)}</td><td><code>{escape(e.ref)}</code></td></tr>"
        for e in entries
        if e.kind != "event"
    )
    counts = {lane: sum(1 for e in entries if _lane(e) == lane) for lane in LANES}
    summary = ", ".join(f"{n} {lane}" for lane, n in counts.items())
    chart = _svg(entries) if entries else "<p>No entries in this window.</p>"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; }}
table {{ border-collapse: collapse; margin-top: 16px; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 4px 8px; text-align: left; font-size: 13px; }}
tr.alert td {{ color: #b0302f; }} tr.triage td {{ color: #0b7285; }}
</style></head><body>
<h1>{escape(title)}</h1>
<p>{len(entries)} entries: {escape(summary)}. Hover a mark for details.</p>
{chart}
<h2>Alerts and triage steps</h2>
<table><tr><th>time (UTC)</th><th>kind</th><th>what</th><th>ref</th></tr>{rows}</table>
</body></html>
"""
