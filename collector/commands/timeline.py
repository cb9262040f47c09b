"""``sekimori timeline`` and ``sekimori audit verify``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from agents.errors import CheckFailed, ConfigError
from collector.commands.common import (
    console,
    data_dir_option,
    err_console,
    esc,
    json_option,
    open_store,
    parse_when,
    print_json,
)


@click.command()
@data_dir_option
@click.option("--alert", "alert_id", help="Timeline around this alert.")
@click.option("--host", help="Timeline of this host (with --since/--until).")
@click.option("--since", default="1h", show_default=True)
@click.option("--until", default="now", show_default=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
)
def timeline(
    data_dir: Path, alert_id: str | None, host: str | None, since: str, until: str, fmt: str
) -> None:
    """Events, alerts and triage records of a host or an alert, in time order."""
    from collector.timeline import alert_timeline, host_timeline

    if bool(alert_id) == bool(host):
        raise ConfigError("give exactly one of --alert ID or --host NAME")
    store = open_store(data_dir)
    if alert_id:
        entries = alert_timeline(store, alert_id)
    else:
        entries = host_timeline(store, host or "", parse_when(since), parse_when(until))
    rows = [e.to_json() for e in entries]
    if fmt == "json":
        print_json(rows)
    elif fmt == "csv":
        writer = csv.DictWriter(
            sys.stdout, fieldnames=["at", "kind", "host", "summary", "ref", "level"]
        )
        writer.writeheader()
        writer.writerows(rows)
    else:
        table = Table(title=esc(f"timeline: {alert_id or host} ({len(rows)} entries)"))
        for column in ("time (UTC)", "kind", "summary", "ref"):
            table.add_column(column, overflow="fold")
        styles = {"alert": "bold red", "triage": "bold cyan", "event": ""}
        for e in entries:
            table.add_row(
                e.at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3],
                Text(e.kind, style=styles[e.kind]),
                esc(e.summary),
                esc(e.ref[:14]),
            )
        console.print(table)


# ----------------------------------------------------------------------------- audit
@click.group()
def audit() -> None:
    """Check the tamper-evident triage ledger."""


@audit.command("verify")
@data_dir_option
@json_option
def audit_verify(data_dir: Path, as_json: bool) -> None:
    """Verify the hash chain of every triage record (exit 10 if broken)."""
    from collector.ledger import verify_triage_chain

    store = open_store(data_dir)
    records = store.triage_records()
    problems = verify_triage_chain(records)
    if as_json:
        print_json({"records": len(records), "problems": problems})
    elif problems:
        for problem in problems:
            err_console.print(f"[red]broken:[/] {esc(problem)}")
    else:
        head = records[-1].hash[:16] if records else "-"
        console.print(f"ledger intact: {len(records)} record(s), head {head}")
    if problems:
        raise CheckFailed(
            f"the triage ledger is broken: {len(problems)} problem(s)",
            remedy="compare with a backup of the store; the first broken record is listed",
        )
