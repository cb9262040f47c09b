"""Human rendering of lab results: the coverage table and a one-line verdict."""

from __future__ import annotations

from rich.markup import escape as esc
from rich.table import Table

from collector.lab.labtest import LabReport
from collector.lab.runner import PhaseResult


def phase_table(results: list[PhaseResult], title: str = "lab scenarios") -> Table:
    """One row per expected rule (the scenario named on its first row)."""
    table = Table(title=title)
    table.add_column("scenario", style="bold", no_wrap=True)
    table.add_column("expected rule")
    table.add_column("result", no_wrap=True)
    table.add_column("s to alert", justify="right", no_wrap=True)
    table.add_column("unexpected alerts")
    for result in results:
        extra = [f"{s.title} ({s.host})" for s in result.unexpected]
        if result.error:
            extra.append(f"[red]error:[/] {esc(result.error)}")
        rows = max(len(result.expects), len(extra), 1)
        for index in range(rows):
            rule_id = result.expects[index] if index < len(result.expects) else None
            seen = result.fired.get(rule_id) if rule_id else None
            mark = "" if rule_id is None else "[green]fired[/]" if seen else "[bold red]MISSED[/]"
            table.add_row(
                result.name if index == 0 else "",
                (seen.title if seen else rule_id) or "",
                mark,
                f"{seen.seconds:.1f}" if seen else ("-" if rule_id else ""),
                extra[index] if index < len(extra) else ("-" if index == 0 else ""),
                end_section=index == rows - 1,
            )
    return table


def summary(report: LabReport) -> str:
    detected = sum(1 for s in report.scenarios if not s.missed)
    verdict = "[bold green]PASS[/]" if report.ok else "[bold red]FAIL[/]"
    return (
        f"{verdict}: {detected}/{len(report.scenarios)} scenarios detected, "
        f"{len(report.baseline.unexpected)} baseline alerts, "
        f"{report.false_positives} false positives in total, {report.seconds:.0f} s"
    )


def baseline_lines(report: LabReport) -> list[str]:
    if not report.baseline.unexpected:
        return ["baseline: no alerts (good)"]
    return [
        f"baseline false positive: {s.title} on {s.host} ({s.rule_id})"
        for s in report.baseline.unexpected
    ]
