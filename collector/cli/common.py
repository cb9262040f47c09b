"""Shared pieces of the command modules: consoles, options, store opening, time parsing."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape as esc

from agents.errors import ConfigError, NotFoundError
from agents.schema import parse_duration
from collector.store.base import Store
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
    "save_store_config",
    "store_options",
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
    if text == "now":
        return now
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
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


STORE_FILE = "store.json"  # written by `up`/`collector run --store URL`: URL + option names


def store_options(
    store_ca: Path | None, api_key_env: str | None, user: str | None, password_env: str | None
) -> dict[str, Any]:
    """Cluster connection options. Secrets come from environment variables, never the CLI."""
    options: dict[str, Any] = {}
    if store_ca is not None:
        options["ca_certs"] = str(store_ca)
    if api_key_env:
        options["api_key"] = _secret(api_key_env)
    if user:
        if not password_env:
            raise ConfigError("--store-user needs --store-password-env VAR")
        options["basic_auth"] = (user, _secret(password_env))
    return options


def _secret(variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(f"environment variable {variable} is empty or unset")
    return value


def save_store_config(data_dir: Path, url: str, settings: dict[str, Any]) -> None:
    """Remember which store the collector uses (names of secret variables, not secrets)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / STORE_FILE).write_text(json.dumps({"url": url, **settings}, indent=2) + "\n")


def open_store(data_dir: Path) -> Store:
    """The store of a data dir (the embedded SQLite file, or the cluster that `up --store`
    recorded); NotFoundError (with the command to run) if there is none."""
    recorded = data_dir / STORE_FILE
    if recorded.exists():
        from collector.store import open_store as open_url

        cfg = json.loads(recorded.read_text(encoding="utf-8"))
        options = store_options(
            Path(cfg["store_ca"]) if cfg.get("store_ca") else None,
            cfg.get("api_key_env"),
            cfg.get("user"),
            cfg.get("password_env"),
        )
        return open_url(str(cfg["url"]), **options)
    path = data_dir / "sekimori.db"
    if not path.exists():
        raise NotFoundError(
            f"no sekimori store in {data_dir}",
            remedy="start sekimori first (sekimori up), or pass --data-dir",
        )
    return SqliteStore(path)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))
