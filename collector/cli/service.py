"""``sekimori up``, ``sekimori collector …`` and ``sekimori demo``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from agents.errors import CheckFailed
from collector.cli.common import (
    console,
    data_dir_option,
    err_console,
    esc,
    json_option,
    open_store,
    print_json,
    save_store_config,
    store_options,
)

MAX_AUTO_WORKERS = 8
MAX_WORKERS = 64


def _workers(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    """``--ingest-workers``: a whole number 0..``MAX_WORKERS``, or ``auto``."""
    text = str(value).strip().lower()
    if text == "auto":
        return auto_workers()
    if not re.fullmatch(r"[0-9]{1,3}", text) or int(text) > MAX_WORKERS:
        raise click.BadParameter(f"{value!r} is not a number from 0 to {MAX_WORKERS} or 'auto'")
    return int(text)


def auto_workers(cores: int | None = None) -> int:
    """One ingest worker per core this process may run on (affinity, as a container or
    ``taskset`` sets it) when there are two or more (at most ``MAX_AUTO_WORKERS``);
    none on one core, where a worker would only add copying."""
    import os

    count = cores if cores is not None else len(os.sched_getaffinity(0))
    return min(count, MAX_AUTO_WORKERS) if count >= 2 else 0


def _collector_options(func: Any) -> Any:
    for option in reversed(
        [
            data_dir_option,
            click.option("--host", default="127.0.0.1", show_default=True, help="Listen address."),
            click.option("--port", type=int, default=8443, show_default=True),
            click.option(
                "--zones",
                type=click.Path(path_type=Path, dir_okay=False, exists=True),
                help="zones.yaml (default: <data-dir>/zones.yaml, created from the example).",
            ),
            click.option(
                "--rules",
                "rule_paths",
                multiple=True,
                type=click.Path(path_type=Path, exists=True),
                help="Sigma rule files or folders (repeatable; default: the shipped rules).",
            ),
            click.option(
                "--store",
                "store_url",
                help="Event store URL: opensearch+https://h:9200, elasticsearch+https://h:9200"
                " (default: the embedded SQLite file in --data-dir). See docs/stores.md.",
            ),
            click.option(
                "--store-ca",
                type=click.Path(path_type=Path, exists=True),
                help="CA bundle for the cluster's TLS.",
            ),
            click.option(
                "--store-api-key-env",
                metavar="VAR",
                help="Environment variable holding the cluster API key.",
            ),
            click.option("--store-user", help="Cluster user (basic auth)."),
            click.option(
                "--ingest-workers",
                metavar="N|auto",
                default="auto",
                callback=_workers,
                show_default=True,
                help="Worker processes for parsing, validation and matching: a number (0:"
                " all in the collector process) or 'auto' (one per core when there are"
                " two or more, capped at 8). See docs/stores.md.",
            ),
            click.option(
                "--store-password-env",
                metavar="VAR",
                help="Environment variable holding that user's password.",
            ),
        ]
    ):
        func = option(func)
    return func


def _build(
    data_dir: Path,
    host: str,
    port: int,
    zones: Path | None,
    rule_paths: tuple[Path, ...],
    ingest_workers: int = 0,
    **store: Any,
) -> Any:
    from collector.service import CollectorConfig, build_collector

    url = store.pop("store_url")
    settings = {
        "store_ca": str(store["store_ca"]) if store["store_ca"] else None,
        "api_key_env": store["store_api_key_env"],
        "user": store["store_user"],
        "password_env": store["store_password_env"],
    }
    options = store_options(
        store["store_ca"],
        store["store_api_key_env"],
        store["store_user"],
        store["store_password_env"],
    )
    config = CollectorConfig(
        data_dir=data_dir,
        host=host,
        port=port,
        zones_path=zones,
        rule_paths=rule_paths,
        store_url=url,
        store_options=options,
        ingest_workers=ingest_workers,
    )
    if url:
        save_store_config(data_dir, url, settings)
    elif (data_dir / "store.json").exists():
        (data_dir / "store.json").unlink()  # back on the embedded store
    collector = build_collector(config)
    for error in collector.rules.errors:
        err_console.print(f"[yellow]rule not loaded:[/] {esc(str(error))}", highlight=False)
    return collector


def _stop_on_signals() -> None:
    """SIGTERM (service managers) and SIGINT (Ctrl-C, even if inherited as ignored) stop us."""
    import signal

    def interrupt(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


@click.command()
@_collector_options
@click.option("--no-agent", is_flag=True, help="Start only the collector.")
def up(
    data_dir: Path,
    host: str,
    port: int,
    zones: Path | None,
    rule_paths: tuple[Path, ...],
    no_agent: bool,
    **store: Any,
) -> None:
    """Run sekimori on this machine: collector on the embedded store plus a local agent."""
    from collector.local import start_local_agent
    from collector.service import CollectorThread

    collector = _build(data_dir, host, port, zones, rule_paths, **store)
    server = CollectorThread(collector)
    server.start()
    _stop_on_signals()
    agent = None
    try:
        if not no_agent:
            agent = start_local_agent(collector)
        console.print(f"[bold green]sekimori is up[/] at {collector.url}")
        console.print(f"  data dir    {data_dir}")
        console.print(f"  rules       {len(collector.rules)} loaded")
        console.print(f"  zones       {data_dir / 'zones.yaml'}")
        console.print(f"  CA for agents {collector.tls.ca_cert}")
        if agent is not None:
            console.print(f"  local agent pid {agent.process.pid}, log {agent.log_path}")
        console.print("look:  sekimori alerts list   |   sekimori timeline --host $(hostname)")
        console.print("stop:  Ctrl-C")
        server.wait()
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


@click.group()
def collector() -> None:
    """Run the collector alone and inspect what it refused."""


@collector.command("run")
@_collector_options
def collector_run(
    data_dir: Path,
    host: str,
    port: int,
    zones: Path | None,
    rule_paths: tuple[Path, ...],
    **store: Any,
) -> None:
    """Run only the collector (agents elsewhere ship to it)."""
    from collector.service import CollectorThread

    server = CollectorThread(_build(data_dir, host, port, zones, rule_paths, **store))
    server.start()
    _stop_on_signals()
    console.print(f"collector listening at {server.collector.url}; Ctrl-C stops")
    try:
        server.wait()
    except KeyboardInterrupt:
        console.print("stopping…")
    finally:
        server.stop()


@collector.command("dead-letters")
@data_dir_option
@click.option("--limit", type=int, default=20, show_default=True)
@json_option
def collector_dead_letters(data_dir: Path, limit: int, as_json: bool) -> None:
    """Events (or bodies) the collector refused, with the reason, newest first."""
    store = open_store(data_dir)
    letters = store.dead_letters(limit)
    if as_json:
        print_json(
            [
                {
                    "agent_id": d.agent_id,
                    "event_id": d.event_id,
                    "reason": d.reason,
                    "raw": d.raw,
                    "received_at": d.received_at.isoformat(),
                }
                for d in letters
            ]
        )
        return
    table = Table(title=f"{len(letters)} dead letter(s)")
    for column in ("received", "agent", "reason", "raw"):
        table.add_column(column, overflow="fold")
    for d in letters:
        table.add_row(f"{d.received_at:%H:%M:%S}", esc(d.agent_id), esc(d.reason), esc(d.raw[:120]))
    console.print(table)


@click.command()
@click.option(
    "--keep",
    type=click.Path(path_type=Path, file_okay=False),
    help="Keep the demo's data dir here (default: a temporary dir, removed afterwards).",
)
@json_option
def demo(keep: Path | None, as_json: bool) -> None:
    """A one-minute, harmless simulated intrusion on this machine, seen end to end."""
    import tempfile

    from collector.demo import run_demo

    with tempfile.TemporaryDirectory(prefix="sekimori-demo-") as tmp:
        data_dir = keep or Path(tmp)
        say = (lambda _: None) if as_json else console.print
        steps, raised = run_demo(data_dir, say)
    if as_json:
        print_json([a.to_json() for a in raised])
    else:
        table = Table(title=f"the demo raised {len(raised)} alert(s)")
        for column in ("level", "title", "host", "events"):
            table.add_column(column)
        for a in raised:
            table.add_row(a.level, esc(a.title), esc(a.host), str(a.count))
        console.print(table)
    missed = {s.expect_title for s in steps} - {a.title for a in raised}
    for title in sorted(missed):
        err_console.print(f"[red]missed:[/] {esc(title)}")
    if keep and not as_json:
        console.print(f"explore: sekimori alerts list --data-dir {keep}")
    if missed:
        raise CheckFailed(
            f"the demo missed {len(missed)} expected alert(s)",
            remedy="check the agent log and `sekimori rules test`",
        )


@collector.command("init")
@data_dir_option
@click.option(
    "--ca-cert",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Use this CA certificate (with --ca-key) instead of generating one.",
)
@click.option("--ca-key", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--tls-name",
    "tls_names",
    multiple=True,
    help="Extra DNS name or IP for the server certificate (repeatable).",
)
def collector_init(
    data_dir: Path, ca_cert: Path | None, ca_key: Path | None, tls_names: tuple[str, ...]
) -> None:
    """Create the collector CA (or install the given one), server certificate and registry."""
    from collector.admin import init_collector

    files = init_collector(data_dir, ca_cert=ca_cert, ca_key=ca_key, tls_names=tls_names)
    console.print(f"collector initialised in {esc(str(data_dir))}")
    console.print(f"  CA certificate (give it to agents): {esc(str(files.ca_cert))}")
    console.print("next: sekimori token create --ttl 1h --uses 1")
