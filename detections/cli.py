"""``sekimori rules validate|test``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape as esc
from rich.table import Table

from agents.errors import CheckFailed

console = Console()
err_console = Console(stderr=True)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")


def print_json(value: Any) -> None:
    import json

    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


# ----------------------------------------------------------------------------- rules
@click.group()
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
        print_json(
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
        raise CheckFailed(f"{len(ruleset.errors)} rule(s) could not be loaded")


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
        print_json(
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
        raise CheckFailed(
            f"{len(failed)} rule(s) failed their samples, {len(ruleset.errors)} did not load"
        )
