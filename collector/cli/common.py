"""Shared pieces of the command modules: consoles, options, store opening, time parsing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape as esc

from agents.errors import ConfigError, NotFoundError
from collector.store.sqlite import SqliteStore

__all__ = [
    "console",
    "data_dir_option",
    "default_data_dir",
    "err_console",
    "esc",
    "json_option",
    "open_store",
    "parse_when",
    "print_json",
]

console = Console()
err_console = Console(stderr=True)


def default_data_dir() -> Path:
    env = os.environ.get("SEKIMORI_DATA_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sekimori"


def parse_when(text: str, *, now: datetime | None = None) -> datetime:
    """``30m``/``2h``/``7d`` ago, ``now``, or an ISO-8601 timestamp (UTC if no zone)."""
    now = now or datetime.now(UTC)
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text == "now":
        return now
    if text[:-1].isdigit() and text[-1:] in units:
        return now - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            f"cannot read time {text!r}", remedy="use 30m, 2h, 7d, now or 2026-11-26T06:00:00Z"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=default_data_dir,
    show_default="$SEKIMORI_DATA_DIR or ~/.local/share/sekimori",
    help="Where the collector keeps its store, certificates and zones.yaml.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def open_store(data_dir: Path) -> SqliteStore:
    """The store of a data dir; NotFoundError (with the command to run) if there is none."""
    path = data_dir / "sekimori.db"
    if not path.exists():
        raise NotFoundError(
            f"no sekimori store in {data_dir}",
            remedy="start sekimori first (sekimori up), or pass --data-dir",
        )
    return SqliteStore(path)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))
