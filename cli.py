"""``sekimori`` command line: a thin layer that parses, dispatches and maps errors to exit codes.

Exit codes: 0 ok; 1 generic failure; 2 configuration; 3 bad input; 4 rule; 5 playbook;
6 store; 7 not found; 8 transport; 9 permission; 10 a check found problems (audit verify,
rules validate/test); 130 interrupted (Ctrl-C). ``--debug`` shows tracebacks.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table
from rich.text import Text

from agents.errors import ConfigError, NotFoundError, SekimoriError

if TYPE_CHECKING:
    from playbooks.triage_io import TriageIO

EXIT_CHECK_FAILED = 10
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


def fail(exc: SekimoriError, debug: bool) -> NoReturn:
    if debug:
        import traceback

        traceback.print_exception(exc)
    err_console.print(f"[bold red]error:[/] {esc(str(exc))}", highlight=False)
    if exc.remedy:
        err_console.print(f"[yellow]hint:[/] {esc(exc.remedy)}", highlight=False)
    sys.exit(exc.exit_code)


class SekimoriGroup(click.Group):
    """Maps domain errors to numbered exit codes, Ctrl-C to 130."""

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv
        try:
            return super().invoke(ctx)
        except SekimoriError as exc:
            fail(exc, debug)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)


data_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=default_data_dir,
    show_default="$SEKIMORI_DATA_DIR or ~/.local/share/sekimori",
    help="Where the collector keeps its store, certificates and zones.yaml.",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


@click.group(cls=SekimoriGroup)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="sekimori")
def cli(debug: bool) -> None:
    """sekimori (関守): zero-trust security monitoring for β′-model networks."""
    import logging

    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _open_store(data_dir: Path) -> Any:
    from collector.store.sqlite import SqliteStore

    path = data_dir / "sekimori.db"
    if not path.exists():
        raise NotFoundError(
            f"no sekimori store in {data_dir}",
            remedy="start sekimori first (sekimori up), or pass --data-dir",
        )
    return SqliteStore(path)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


# ------------------------------------------------------------------- up / collector
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
        ]
    ):
        func = option(func)
    return func


def _build(
    data_dir: Path, host: str, port: int, zones: Path | None, rule_paths: tuple[Path, ...]
) -> Any:
    from collector.service import CollectorConfig, build_collector

    config = CollectorConfig(
        data_dir=data_dir, host=host, port=port, zones_path=zones, rule_paths=rule_paths
    )
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


@cli.command()
@_collector_options
@click.option("--no-agent", is_flag=True, help="Start only the collector.")
def up(
    data_dir: Path,
    host: str,
    port: int,
    zones: Path | None,
    rule_paths: tuple[Path, ...],
    no_agent: bool,
) -> None:
    """Run sekimori on this machine: collector on the embedded store plus a local agent."""
    from collector.local import start_local_agent
    from collector.service import CollectorThread

    collector = _build(data_dir, host, port, zones, rule_paths)
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


@cli.group()
def collector() -> None:
    """Run the collector alone and inspect what it refused."""


@collector.command("run")
@_collector_options
def collector_run(
    data_dir: Path, host: str, port: int, zones: Path | None, rule_paths: tuple[Path, ...]
) -> None:
    """Run only the collector (agents elsewhere ship to it)."""
    from collector.service import CollectorThread

    server = CollectorThread(_build(data_dir, host, port, zones, rule_paths))
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
    store = _open_store(data_dir)
    letters = store.dead_letters(limit)
    if as_json:
        _print_json(
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


@cli.command(
    "agent",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.argument("agent_args", nargs=-1, type=click.UNPROCESSED)
def agent_command(agent_args: tuple[str, ...]) -> None:
    """Run the endpoint agent (same flags as `python -m agents`; try `sekimori agent --help`)."""
    from agents.__main__ import main as agent_main

    sys.exit(agent_main(list(agent_args)))


@cli.command()
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
        _print_json([a.to_json() for a in raised])
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
        sys.exit(EXIT_CHECK_FAILED)


# ---------------------------------------------------------------------------- alerts
@cli.group()
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
    store = _open_store(data_dir)
    found = store.list_alerts(
        status=status, host=host, since=parse_when(since) if since else None, limit=limit
    )
    if as_json:
        _print_json([a.to_json() for a in found])
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
    from collector.models import EventQuery
    from collector.timeline import summarise_event

    store = _open_store(data_dir)
    alert = store.get_alert(alert_id)
    if alert is None:
        raise NotFoundError(f"no alert with id {alert_id!r}", remedy="sekimori alerts list")
    events = store.query_events(EventQuery(ids=alert.event_ids))
    if as_json:
        _print_json({**alert.to_json(), "events": events})
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


# ---------------------------------------------------------------------------- triage
def _default_actor() -> str:
    import getpass

    return os.environ.get("SEKIMORI_ANALYST") or getpass.getuser()


@cli.command()
@click.argument("alert_id")
@data_dir_option
@click.option(
    "--answers",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="Run unattended: a YAML/JSON file mapping step id -> answer.",
)
@click.option(
    "--as",
    "actor",
    default=_default_actor,
    show_default="$SEKIMORI_ANALYST or login",
    help="Analyst name recorded in the ledger.",
)
@click.option("--playbook", "playbook_id", help="Use this playbook instead of the selected one.")
@click.option(
    "--playbooks",
    "playbook_paths",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="Extra playbook files or folders (repeatable), besides the shipped ones.",
)
def triage(
    alert_id: str,
    data_dir: Path,
    answers: Path | None,
    actor: str,
    playbook_id: str | None,
    playbook_paths: tuple[Path, ...],
) -> None:
    """Triage an alert with its playbook; every step is recorded in the ledger."""
    from playbooks.console_io import ConsoleTriageIO
    from playbooks.loader import builtin_content_dir, load_playbooks
    from playbooks.runner import run_playbook
    from playbooks.selection import select_playbook
    from playbooks.triage_io import AnswersFileIO

    loaded = load_playbooks(builtin_content_dir(), *playbook_paths)
    for error in loaded.errors:
        err_console.print(f"[yellow]playbook not loaded:[/] {esc(str(error))}", highlight=False)
    store = _open_store(data_dir)
    alert = store.get_alert(alert_id)
    if alert is None:
        raise NotFoundError(f"no alert with id {alert_id!r}", remedy="sekimori alerts list")
    if playbook_id:
        chosen = [pb for pb in loaded.playbooks if pb.id == playbook_id]
        if not chosen:
            known = ", ".join(pb.id for pb in loaded.playbooks)
            raise NotFoundError(f"no playbook {playbook_id!r}", remedy=f"known: {known}")
        playbook = chosen[0]
    else:
        playbook = select_playbook(alert, loaded.playbooks)
    io: TriageIO = (
        AnswersFileIO.from_file(answers, playbook=playbook) if answers else ConsoleTriageIO(console)
    )
    console.print(
        f"[bold]{alert.id}[/] {esc(alert.title)} on {esc(alert.host)} — playbook"
        f" {esc(playbook.id)} ({esc(playbook.title)}), analyst {esc(actor)}"
    )
    outcome = run_playbook(playbook, alert, store, io, actor)
    console.print(
        f"[green]closed[/] {outcome.alert.id} as [bold]{outcome.resolution}[/];"
        f" {len(outcome.records)} step(s) recorded."
        f" next: sekimori timeline --alert {outcome.alert.id}"
    )


# -------------------------------------------------------------------------- timeline
@cli.command()
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
    store = _open_store(data_dir)
    if alert_id:
        entries = alert_timeline(store, alert_id)
    else:
        entries = host_timeline(store, host or "", parse_when(since), parse_when(until))
    rows = [e.to_json() for e in entries]
    if fmt == "json":
        _print_json(rows)
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


# ----------------------------------------------------------------------------- rules
@cli.group()
def rules() -> None:
    """Validate and test Sigma rules."""


rule_path_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=True))


def _load_rules(paths: tuple[Path, ...]) -> Any:
    from detections import default_rules_dir, load_rules

    return load_rules(list(paths) or [default_rules_dir()])


@rules.command("validate")
@rule_path_argument
@json_option
def rules_validate(paths: tuple[Path, ...], as_json: bool) -> None:
    """Parse and compile rules; list every broken rule with file and line (exit 10 if any)."""
    ruleset = _load_rules(paths)
    if as_json:
        _print_json(
            {
                "loaded": len(ruleset),
                "errors": [
                    {"source": e.source, "line": e.line, "message": e.message}
                    for e in ruleset.errors
                ],
                "skipped": [
                    {
                        "source": str(s.source),
                        "title": s.title,
                        "reason": s.reason,
                        "detail": s.detail,
                    }
                    for s in ruleset.skipped
                ],
            }
        )
    else:
        for error in ruleset.errors:
            err_console.print(f"[red]error:[/] {esc(str(error))}", highlight=False)
        for skipped in ruleset.skipped:
            what = f"{skipped.source}: {skipped.reason}: {skipped.detail}"
            console.print(f"[yellow]skipped:[/] {esc(what)}", highlight=False)
        console.print(
            f"{len(ruleset)} rule(s) loaded, {len(ruleset.errors)} error(s),"
            f" {len(ruleset.skipped)} skipped"
        )
    if ruleset.errors:
        sys.exit(EXIT_CHECK_FAILED)


@rules.command("test")
@rule_path_argument
@json_option
def rules_test(paths: tuple[Path, ...], as_json: bool) -> None:
    """Run every rule's positive and negative sample events (exit 10 on any failure)."""
    from detections.samples import check_samples

    ruleset = _load_rules(paths)
    reports = check_samples(ruleset)
    failed = [r for r in reports if not r.ok]
    if as_json:
        _print_json(
            [
                {
                    "rule_id": r.rule_id,
                    "title": r.title,
                    "checked": r.checked,
                    "problems": list(r.problems),
                }
                for r in reports
            ]
        )
    else:
        table = Table(title="rule samples")
        for column in ("rule", "samples", "result"):
            table.add_column(column, overflow="fold")
        for r in reports:
            verdict = "[green]ok[/]" if r.ok else "[red]" + esc("; ".join(r.problems)) + "[/]"
            table.add_row(esc(r.title), str(r.checked), verdict)
        console.print(table)
        console.print(f"{len(reports) - len(failed)} passed, {len(failed)} failed")
    if failed or ruleset.errors:
        sys.exit(EXIT_CHECK_FAILED)


# ----------------------------------------------------------------------------- audit
@cli.group()
def audit() -> None:
    """Check the tamper-evident triage ledger."""


@audit.command("verify")
@data_dir_option
@json_option
def audit_verify(data_dir: Path, as_json: bool) -> None:
    """Verify the hash chain of every triage record (exit 10 if broken)."""
    from collector.ledger import verify_triage_chain

    store = _open_store(data_dir)
    records = store.triage_records()
    problems = verify_triage_chain(records)
    if as_json:
        _print_json({"records": len(records), "problems": problems})
    elif problems:
        for problem in problems:
            err_console.print(f"[red]broken:[/] {esc(problem)}")
    else:
        head = records[-1].hash[:16] if records else "-"
        console.print(f"ledger intact: {len(records)} record(s), head {head}")
    if problems:
        sys.exit(EXIT_CHECK_FAILED)


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="sekimori")


if __name__ == "__main__":
    main()
