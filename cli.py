"""``sekimori`` command line: the root group. It parses, dispatches and maps errors to exit codes.

The commands live next to what they drive (one module per command group):
``collector/cli/*`` (up, collector, demo, alerts, timeline, audit),
``detections/cli.py`` (rules), ``playbooks/cli.py`` (triage). They are imported only
when used, so ``sekimori --help`` stays fast and has no side effects.

Exit codes: 0 ok; 1 unexpected failure; 2 configuration; 3 bad input; 4 rule; 5 playbook;
6 store; 7 not found; 8 transport; 9 permission; 10 a check found problems; 130 interrupted.
``--debug`` shows tracebacks.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape as esc

from agents.errors import SekimoriError

# command name -> (module, attribute); imported on first use
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("collector.cli.service", "up"),
    "collector": ("collector.cli.service", "collector"),
    "demo": ("collector.cli.service", "demo"),
    "alerts": ("collector.cli.alerts", "alerts"),
    "timeline": ("collector.cli.timeline", "timeline"),
    "audit": ("collector.cli.timeline", "audit"),
    "rules": ("detections.cli", "rules"),
    "triage": ("playbooks.cli", "triage"),
    "hunt": ("collector.cli.hunt", "hunt"),
    "agent": ("collector.cli.agents", "agent"),
    "agents": ("collector.cli.agents", "agents"),
    "token": ("collector.cli.agents", "token"),
    "action": ("collector.cli.agents", "action"),
    "lab": ("collector.cli.lab", "lab"),
}

err_console = Console(stderr=True)


def fail(exc: SekimoriError, debug: bool) -> NoReturn:
    if debug:
        import traceback

        traceback.print_exception(exc)
    err_console.print(f"[bold red]error:[/] {esc(str(exc))}", highlight=False)
    if exc.remedy:
        err_console.print(f"[yellow]hint:[/] {esc(exc.remedy)}", highlight=False)
    sys.exit(exc.exit_code)


class SekimoriGroup(click.Group):
    """Lazily loaded subcommands; domain errors -> numbered exit codes, Ctrl-C -> 130."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*COMMANDS, *super().list_commands(ctx)])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, attribute = COMMANDS[cmd_name]
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{module}.{attribute} is not a click command")
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        debug = "--debug" in sys.argv
        try:
            return super().invoke(ctx)
        except SekimoriError as exc:
            fail(exc, debug)
        except KeyboardInterrupt:
            err_console.print("interrupted")
            sys.exit(130)


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


def main(argv: Sequence[str] | None = None) -> None:
    cli.main(args=list(argv) if argv is not None else None, prog_name="sekimori")


if __name__ == "__main__":
    main()
