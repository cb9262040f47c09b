"""``sekimori hunt``: retro-hunt Sigma rules over stored events; matches become alerts,
deduplicated against the alerts streaming detection already raised."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from collector.cli.common import (
    console,
    data_dir_option,
    esc,
    json_option,
    open_store,
    parse_when,
    print_json,
)


@click.command()
@click.option(
    "--rules",
    "rule_paths",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="Rule files or folders (repeatable; default: the shipped rules).",
)
@click.option("--since", default="30d", show_default=True, help="30d, 12h, or an ISO time.")
@click.option("--until", default="now", show_default=True)
@data_dir_option
@json_option
def hunt(
    rule_paths: tuple[Path, ...], since: str, until: str, data_dir: Path, as_json: bool
) -> None:
    """Hunt rules over the store (the data dir's SQLite, or the cluster `up --store` uses)."""
    from collector.hunt import run_hunt
    from detections import default_rules_dir, load_rules

    store = open_store(data_dir)
    rules = load_rules(list(rule_paths) or [default_rules_dir()])
    report = run_hunt(store, rules, since=parse_when(since), until=parse_when(until))
    if as_json:
        print_json(report.to_json())
        return
    table = Table(title=f"hunt {report.since:%Y-%m-%d %H:%M} .. {report.until:%Y-%m-%d %H:%M} UTC")
    for column in ("rule", "strategy", "why"):
        table.add_column(column, overflow="fold")
    for plan in report.plans:
        table.add_row(esc(plan.title), plan.strategy, esc(plan.reason))
    console.print(table)
    console.print(
        f"{report.examined} candidate event(s) examined, {report.matches} match(es):"
        f" {report.new_alerts} new alert(s), {report.updated_alerts} updated,"
        f" {report.known} already alerted by streaming detection"
    )
