"""``sekimori alerts list|show``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from agents.errors import NotFoundError
from collector.cli.common import (
    console,
    data_dir_option,
    esc,
    json_option,
    open_store,
    parse_when,
    print_json,
)


# ---------------------------------------------------------------------------- alerts
@click.group()
def alerts() -> None:
    """List and inspect alerts."""


LEVEL_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}


@alerts.command("list")
@data_dir_option
@click.option("--status", type=click.Choice(["open", "in_progress", "closed"]))
@click.option("--host")
@click.option("--since", help="Only alerts last seen after this (30m, 2h, 7d, ISO time).")
@click.option("--limit", type=int, default=50, show_default=True)
@json_option
def alerts_list(
    data_dir: Path, status: Any, host: str | None, since: str | None, limit: int, as_json: bool
) -> None:
    """List alerts, newest first."""
    store = open_store(data_dir)
    found = store.list_alerts(
        status=status, host=host, since=parse_when(since) if since else None, limit=limit
    )
    if as_json:
        print_json([a.to_json() for a in found])
        return
    table = Table(title=f"{len(found)} alert(s)")
    table.add_column("id", no_wrap=True)
    table.add_column("level", no_wrap=True)
    table.add_column("title", min_width=24, ratio=1)
    for column in ("host", "zone", "n", "last seen", "status"):
        table.add_column(column, no_wrap=True)
    for a in found:
        table.add_row(
            a.id,
            Text(a.level, style=LEVEL_STYLE.get(a.level, "")),
            esc(a.title),
            esc(a.host),
            esc(a.zone or "-"),
            str(a.count),
            a.last_seen.strftime("%m-%d %H:%M:%S"),
            a.status,
        )
    console.print(table)


@alerts.command("show")
@click.argument("alert_id")
@data_dir_option
@json_option
def alerts_show(alert_id: str, data_dir: Path, as_json: bool) -> None:
    """Show one alert with its matching events."""
    from collector.event_lookup import alert_events
    from collector.timeline import summarise_event

    store = open_store(data_dir)
    alert = store.get_alert(alert_id)
    if alert is None:
        raise NotFoundError(f"no alert with id {alert_id!r}", remedy="sekimori alerts list")
    events = alert_events(store, alert)
    if as_json:
        print_json({**alert.to_json(), "events": events})
        return
    console.print(f"[bold]{alert.id}[/]  {esc(alert.title)}")
    for label, value in (
        ("level", alert.level),
        ("rule", alert.rule_id),
        ("tags", ", ".join(alert.tags)),
        ("host / zone", f"{alert.host} / {alert.zone or '-'}"),
        ("count", str(alert.count)),
        ("first / last seen", f"{alert.first_seen:%Y-%m-%d %H:%M:%S} / {alert.last_seen:%H:%M:%S}"),
        ("status", f"{alert.status} {alert.resolution or ''}"),
    ):
        console.print(f"  {label:18} {esc(value)}", highlight=False)
    if alert.description:
        console.print(f"  {esc(alert.description)}", highlight=False)
    console.print(f"  events ({len(events)} shown):")
    for ev in events:
        console.print(
            f"    {esc(str(ev['@timestamp']))}  {esc(summarise_event(ev))}", highlight=False
        )
    console.print(f"next: sekimori triage {alert.id}   |   sekimori timeline --alert {alert.id}")
