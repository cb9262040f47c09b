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


def _placeholders(values: tuple[str, ...]) -> dict[str, list[str]] | None:
    if not values:
        return None
    result: dict[str, list[str]] = {}
    for item in values:
        name, sep, rest = item.partition("=")
        if not sep or not name:
            raise click.BadParameter(
                f"{item!r}: use NAME=VALUE1,VALUE2", param_hint="--placeholder"
            )
        result.setdefault(name, []).extend(v for v in rest.split(",") if v)
    return result


@rules.command("scan")
@click.option(
    "--rules",
    "rule_paths",
    multiple=True,
    type=click.Path(path_type=Path, exists=True),
    help="Rule files or folders (repeatable; default: the shipped rules).",
)
@click.option(
    "--format", "fmt", type=click.Choice(["text", "jsonl"]), default="text", show_default=True
)
@click.option("--placeholder", "placeholders", multiple=True, help="|expand values: NAME=V1,V2")
@click.option(
    "--cache-dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Cache compiled rule sets here (a later scan starts in a fraction of a second).",
)
@click.option(
    "--lateness",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds of out-of-order tolerance for correlation rules.",
)
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True))
def rules_scan(
    rule_paths: tuple[Path, ...],
    fmt: str,
    placeholders: tuple[str, ...],
    cache_dir: Path | None,
    lateness: float,
    files: tuple[Path, ...],
) -> None:
    """Evaluate rules over log files: EVTX, JSON (objects, concatenated, arrays), JSONL;
    gzip and zip accepted. One line per match."""
    import json

    from rich.progress import BarColumn, Progress, TextColumn

    from detections.scan import scan_files

    matches = 0
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed} events"),
        console=err_console,
        transient=True,
    ) as bar:
        tasks: dict[Path, Any] = {}

        def progress(path: Path, events: int, done: bool) -> None:
            if path not in tasks:
                tasks[path] = bar.add_task(path.name, total=None)
            bar.update(tasks[path], completed=events, total=events if done else None)

        for match in scan_files(
            list(rule_paths),
            files,
            progress=progress,
            placeholders=_placeholders(placeholders),
            cache_dir=cache_dir,
            lateness=lateness,
        ):
            matches += 1
            if fmt == "jsonl":
                click.echo(json.dumps(match.to_dict(), ensure_ascii=False, default=str))
            else:
                click.echo(
                    f"{match.file}:{match.index}: [{match.level}] {match.rule_title}"
                    f" ({match.rule_id})"
                )
    err_console.print(f"{matches} match(es) in {len(files)} file(s)")


@rules.command("convert")
@click.option(
    "--target",
    type=click.Choice(["lucene", "esql", "eql", "opensearch", "sqlite"]),
    required=True,
    help="Query language (pySigma backends, offline).",
)
@rule_path_argument
@json_option
def rules_convert(target: str, paths: tuple[Path, ...], as_json: bool) -> None:
    """Convert rules to store queries with the pySigma backends (exit 10 if any fails)."""
    from detections import default_rules_dir
    from detections.convert import convert_rules

    converted = convert_rules(list(paths) or [default_rules_dir()], target)  # type: ignore[arg-type]
    failed = [c for c in converted if c.error]
    if as_json:
        print_json(
            [
                {
                    "rule_id": c.rule_id,
                    "title": c.title,
                    "source": str(c.source),
                    "target": c.target,
                    "queries": list(c.queries),
                    "error": c.error,
                }
                for c in converted
            ]
        )
    else:
        for c in converted:
            if c.error:
                err_console.print(f"[red]{esc(str(c.source))}:[/] {esc(c.error)}")
            for query in c.queries:
                click.echo(f"# {c.title} ({c.rule_id})\n{query}\n")
    if failed:
        raise CheckFailed(f"{len(failed)} of {len(converted)} rule(s) did not convert to {target}")


@rules.command("bench", context_settings={"ignore_unknown_options": True})
@click.argument("bench_args", nargs=-1, type=click.UNPROCESSED)
def rules_bench(bench_args: tuple[str, ...]) -> None:
    """Run the engine benchmark (bench/sigma_engine.py in a source checkout; same flags)."""
    import subprocess
    import sys

    script = Path(__file__).resolve().parent.parent / "bench" / "sigma_engine.py"
    if not script.exists():
        raise CheckFailed(
            "the benchmark ships with the source tree, not the installed package",
            remedy="run it from a clone: python bench/sigma_engine.py --help",
        )
    raise SystemExit(
        subprocess.run([sys.executable, str(script), *bench_args], check=False).returncode
    )
