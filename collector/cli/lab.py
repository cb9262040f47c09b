"""``sekimori lab``: build the β′ network lab, run attacks and the baseline, prove detection."""

from __future__ import annotations

from pathlib import Path

import click

from agents.errors import CheckFailed, NotFoundError
from collector.cli.common import console, err_console, esc, json_option, print_json
from collector.lab.state import DEFAULT_DATA_DIR

lab_dir_option = click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="The lab collector's data dir (store, certificates, logs, state file).",
)
topology_option = click.option(
    "--topology",
    "topology_file",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="A topology YAML (default: the built-in β′ municipality).",
)


@click.group()
def lab() -> None:
    """The β′ network lab: real segments (network namespaces), real agents and collector."""


@lab.command()
@lab_dir_option
@topology_option
def up(data_dir: Path, topology_file: Path | None) -> None:
    """Build the lab and start its collector, services and agents (removes an old lab first)."""
    from collector.lab import session

    running = session.up(data_dir, topology_file)
    console.print(
        f"lab up: {len(running.state.namespaces)} namespaces, collector "
        f"{running.state.collector_url}, data in {esc(str(data_dir))}"
    )
    console.print(f"next: sekimori lab attack NAME --data-dir {esc(str(data_dir))}")


@lab.command()
@lab_dir_option
@topology_option
def down(data_dir: Path, topology_file: Path | None) -> None:
    """Stop the lab's processes and remove its namespaces (and nothing else)."""
    from collector.lab import session

    removed = session.down(data_dir, topology_file)
    console.print(f"lab down: removed {len(removed)} namespaces")


@lab.command()
@lab_dir_option
@json_option
def status(data_dir: Path, as_json: bool) -> None:
    """Show whether the lab is up: namespaces and processes."""
    from collector.lab import session

    state = session.status(data_dir)
    if as_json:
        print_json(state)
        return
    console.print(f"lab {'up' if state['up'] else 'down'} ({esc(str(data_dir))})")
    for process in state["processes"]:
        alive = "running" if process["alive"] else "[red]stopped[/]"
        console.print(f"  {process['name']:<18} pid {process['pid']:<8} {alive}")


@lab.command()
@click.argument("name")
@lab_dir_option
@json_option
def attack(name: str, data_dir: Path, as_json: bool) -> None:
    """Run one scenario in the running lab and report what fired."""
    from collector.lab import session
    from collector.lab.report import phase_table
    from collector.lab.runner import run_scenario
    from collector.lab.scenarios import get_scenario

    scenario = get_scenario(name)
    running = session.running(data_dir)
    if running is None:
        raise NotFoundError("the lab is not up", remedy=f"sekimori lab up --data-dir {data_dir}")
    result = run_scenario(running, scenario)
    if as_json:
        print_json(result.to_json())
    else:
        console.print(phase_table([result], title=f"scenario {name}"))
    if not result.ok:
        raise CheckFailed(f"scenario {name}: missed {len(result.missed)} expected detections")


@lab.command("test")
@lab_dir_option
@topology_option
@click.option("--scenario", "names", multiple=True, help="Run only these (repeatable).")
@click.option("--keep", is_flag=True, help="Leave the lab up afterwards.")
@json_option
def test_command(
    data_dir: Path, topology_file: Path | None, names: tuple[str, ...], keep: bool, as_json: bool
) -> None:
    """Baseline + every scenario: coverage table, latencies, false positives."""
    from collector.lab.labtest import run_lab_test
    from collector.lab.report import baseline_lines, phase_table, summary

    def say(message: str) -> None:
        err_console.print(f"[dim]lab:[/] {esc(message)}")

    report = run_lab_test(data_dir, topology_file, names, keep=keep, say=say)
    if as_json:
        print_json(report.to_json())
    else:
        console.print(phase_table(report.scenarios))
        for line in baseline_lines(report):
            console.print(esc(line))
        if report.final.unexpected:
            console.print(phase_table([report.final], title="alerts after the last scenario"))
        console.print(summary(report))
    if not report.ok:
        raise CheckFailed("the lab test found missed detections or false positives")
