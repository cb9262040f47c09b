"""``sekimori agent run|enroll|revoke``, ``sekimori agents list``, ``sekimori token create``,
``sekimori action request``."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from collector.cli.common import console, data_dir_option, esc, json_option, print_json

PASSTHROUGH = {"ignore_unknown_options": True, "allow_extra_args": True}


@click.group()
def agent() -> None:
    """Run, enroll or revoke an endpoint agent."""


@agent.command("run", context_settings=PASSTHROUGH, add_help_option=False)
@click.argument("agent_args", nargs=-1, type=click.UNPROCESSED)
def agent_run(agent_args: tuple[str, ...]) -> None:
    """Run the agent (same flags as `python -m agents`; `sekimori agent run --help`)."""
    from agents.__main__ import main as agent_main

    sys.exit(agent_main(list(agent_args)))


@agent.command("enroll", context_settings=PASSTHROUGH, add_help_option=False)
@click.argument("agent_args", nargs=-1, type=click.UNPROCESSED)
def agent_enroll(agent_args: tuple[str, ...]) -> None:
    """Enroll this host: URL TOKEN --ca ca.pem --state-dir DIR (TOKEN '-' reads stdin)."""
    from agents.__main__ import main as agent_main

    sys.exit(agent_main(["enroll", *agent_args]))


@agent.command("revoke")
@click.argument("agent_id")
@click.option("--reason", default="", help="Recorded with the revocation.")
@data_dir_option
def agent_revoke(agent_id: str, reason: str, data_dir: Path) -> None:
    """Revoke an agent: a running collector refuses it within about a second."""
    from collector.admin import revoke_agent

    record = revoke_agent(data_dir, agent_id, reason)
    console.print(f"revoked {esc(record.id)} ({esc(record.name or '-')})")


@click.group()
def agents() -> None:
    """Enrolled agents."""


@agents.command("list")
@data_dir_option
@json_option
def agents_list(data_dir: Path, as_json: bool) -> None:
    """Identity, zone, last seen and spool backlog of every enrolled agent."""
    from collector.admin import list_agents

    records = list_agents(data_dir)
    if as_json:
        print_json([r.to_json() for r in records])
        return
    table = Table(title=f"{len(records)} agent(s)")
    for column in ("id", "name", "zone", "last seen", "max seq", "backlog", "cert until", "state"):
        table.add_column(column, overflow="fold")
    for r in records:
        row = r.to_json()
        table.add_row(
            *(esc(str(row.get(k) or "-")) for k in ("id", "name", "zone")),
            _when(row.get("last_seen")),
            *(
                esc(str(row.get(k) if row.get(k) is not None else "-"))
                for k in ("max_seq", "backlog")
            ),
            _when(row.get("not_after")),
            "[red]revoked[/]" if row.get("revoked") else "active",
        )
    console.print(table)


def _when(value: object) -> str:
    """Registry times are epoch seconds (or ISO text); show them as UTC."""
    if isinstance(value, int | float):
        from datetime import UTC, datetime

        return datetime.fromtimestamp(value, UTC).strftime("%m-%d %H:%M:%S")
    return esc(str(value or "-"))


@click.group()
def token() -> None:
    """One-time enrollment tokens."""


@token.command("create")
@data_dir_option
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 10m, 1h, 1d.")
@click.option("--uses", type=int, default=1, show_default=True)
@click.option("--zone", help="Zone recorded for agents enrolled with this token.")
def token_create(data_dir: Path, ttl: str, uses: int, zone: str | None) -> None:
    """Create an enrollment token (printed once; only its hash is stored)."""
    from collector.admin import create_token

    click.echo(create_token(data_dir, ttl=ttl, uses=uses, zone=zone))


@click.group()
def action() -> None:
    """Response actions (agents run only what their local --allow-action policy enables)."""


@action.command("request")
@click.argument("agent_id")
@click.argument("name", type=click.Choice(["kill_process", "isolate_host", "release_isolation"]))
@click.option("--pid", type=int, help="Process id (kill_process).")
@click.option(
    "--entity-id",
    help="kill_process: the process.entity_id from the alert's event; the agent refuses if"
    " the pid now belongs to another process (pid reuse).",
)
@click.option("--as", "actor", required=True, help="Analyst requesting it (audited).")
@click.option("--alert", "alert_id", default="", help="The alert this responds to.")
@data_dir_option
def action_request(
    agent_id: str,
    name: str,
    pid: int | None,
    entity_id: str | None,
    actor: str,
    alert_id: str,
    data_dir: Path,
) -> None:
    """Queue a response action for an agent; the request and its result are audited."""
    from collector.admin import request_action

    args: dict[str, object] | None = {"pid": pid} if pid is not None else None
    if entity_id is not None:
        if args is None:
            raise click.UsageError("--entity-id goes with --pid")
        args["entity_id"] = entity_id
    command = request_action(data_dir, agent_id, name, args, actor=actor, alert_id=alert_id)
    console.print(f"queued {esc(name)} for {esc(agent_id)}: command {esc(str(command.id))}")
