"""Interactive triage in a terminal: the ``TriageIO`` the CLI uses (rich tables and prompts)."""

from __future__ import annotations

from rich.console import Console
from rich.prompt import Prompt
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from collector.timeline import summarise_event
from playbooks.model import CheckStep, CloseStep, NoteStep, QueryStep
from playbooks.process_tree import ProcessTreeResult
from playbooks.queries import EventsResult, QueryResult

MAX_ROWS = 50


class ConsoleTriageIO:
    """Shows query results as a process tree or an event table; asks with validated prompts."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()

    def _heading(self, step: QueryStep | CheckStep | NoteStep | CloseStep) -> None:
        self.console.rule(Text(step.title or step.id, style="bold"))
        if step.hint:
            self.console.print(Text(step.hint, style="dim"))

    def show(self, step: QueryStep, result: QueryResult) -> None:
        self._heading(step)
        if isinstance(result, ProcessTreeResult):
            self._tree(result)
        else:
            self._events(result)
        if result.truncated:
            self.console.print("[yellow]result truncated: narrow the window to see all[/]")

    def _tree(self, result: ProcessTreeResult) -> None:
        root = Tree(Text(f"process tree on {result.host}"))
        stack: list[Tree] = [root]
        for node in result.nodes:
            del stack[node.depth + 1 :]
            style = {"alert": "bold red", "ancestor": "cyan", "descendant": ""}[node.relation]
            label = Text(f"{node.pid} {node.name}", style=style)
            label.append(f" {node.command_line or ''}")
            if node.event_id is None:
                label.append(" (not recorded)", style="dim")
            branch = stack[-1].add(label, highlight=False)
            stack.append(branch)
        self.console.print(root)

    def _events(self, result: EventsResult) -> None:
        table = Table(title=Text(f"{result.query}: {len(result.events)} event(s) on {result.host}"))
        table.add_column("time (UTC)")
        table.add_column("event", overflow="fold")
        for event in result.events[:MAX_ROWS]:
            table.add_row(
                Text(str(event.get("@timestamp", ""))[11:23]), Text(summarise_event(event))
            )
        self.console.print(table)
        if len(result.events) > MAX_ROWS:
            self.console.print(f"[dim]… {len(result.events) - MAX_ROWS} more[/]")

    def ask(self, step: CheckStep | CloseStep, choices: tuple[str, ...]) -> str:
        self._heading(step)
        return Prompt.ask(Text(step.question), choices=list(choices), console=self.console)

    def note(self, step: NoteStep) -> str:
        self._heading(step)
        while True:
            text = Prompt.ask(Text(step.prompt), default="", console=self.console).strip()
            if text or not step.required:
                return text
            self.console.print("[yellow]a note is required here[/]")
