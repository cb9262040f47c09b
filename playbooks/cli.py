"""``sekimori triage``: run an alert's playbook, interactively or from an answers file."""

from __future__ import annotations

import os
from pathlib import Path

import click

from agents.errors import NotFoundError
from collector.cli.common import (
    console,
    data_dir_option,
    err_console,
    esc,
    open_store,
)
from playbooks.triage_io import TriageIO


# ---------------------------------------------------------------------------- triage
def _default_actor() -> str:
    import getpass

    return os.environ.get("SEKIMORI_ANALYST") or getpass.getuser()


@click.command()
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
    store = open_store(data_dir)
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
