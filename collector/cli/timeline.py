"""``sekimori timeline`` and ``sekimori audit verify``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

import click
from rich.table import Table
from rich.text import Text

from agents.errors import CheckFailed, ConfigError
from collector.cli.common import (
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
    type=click.Choice(["table", "json", "csv", "html"]),
    default="table",
    show_default=True,
    help="html: a self-contained page with a swimlane picture (for reports).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file instead of the terminal.",
)
def timeline(
    data_dir: Path,
    alert_id: str | None,
    host: str | None,
    since: str,
    until: str,
    fmt: str,
    output: Path | None,
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
    if fmt == "html" or output is not None:
        _write_file(fmt, entries, f"sekimori timeline: {alert_id or host}", output)
        return
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


def _write_file(fmt: str, entries: list[Any], title: str, output: Path | None) -> None:
    import io
    import json as jsonlib

    from collector.report import timeline_html

    if fmt == "html":
        text = timeline_html(title, entries)
    elif fmt == "json":
        text = jsonlib.dumps([e.to_json() for e in entries], ensure_ascii=False, indent=2)
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(entries[0].to_json()) if entries else [])
        writer.writeheader()
        writer.writerows(e.to_json() for e in entries)
        text = buffer.getvalue()
    else:
        raise ConfigError("--output needs --format json, csv or html")
    if output is None:
        click.echo(text)
    else:
        output.write_text(text, encoding="utf-8")
        console.print(f"wrote {len(entries)} entries to {esc(str(output))}")
