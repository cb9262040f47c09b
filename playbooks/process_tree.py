"""The ``process_tree`` query: the alert's processes, their ancestors and descendants.

Ancestors are found by walking ``process.parent.pid`` (latest start of that pid on the host
before the child started; a parent that has no recorded start is shown from the child's
``process.parent.*`` fields and ends the walk). Descendants are the host's process starts in
the window whose parent is the process (``process.parent.entity_id`` when both sides carry
it, otherwise the pid and a start no earlier than the parent's). Depth is bounded both ways.
Built only on ``Store.query_events`` so it works on every store.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from agents.schema import get_path
from collector.store.base import Store
from playbooks.anchor import AlertAnchor, event_time, query_window

Relation = Literal["ancestor", "alert", "descendant"]
MAX_ROOTS: Final = 20
MAX_DESCENDANT_LEVELS: Final = 8
MAX_SUMMARY_PROCESSES: Final = 200


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessNode:
    pid: int
    parent_pid: int | None
    name: str
    executable: str | None
    command_line: str | None
    user: str | None
    start: datetime | None
    event_id: str | None  # None: not recorded, inferred from a child's process.parent.* fields
    relation: Relation
    depth: int  # nesting level for display; 0 = the top-most process shown in its tree


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessTreeResult:
    host: str
    since: datetime
    until: datetime
    nodes: tuple[ProcessNode, ...]  # display order: each tree top-down, children after parents
    truncated: bool
    query: Literal["process_tree"] = "process_tree"

    @property
    def event_ids(self) -> tuple[str, ...]:
        return tuple(node.event_id for node in self.nodes if node.event_id is not None)

    def summary(self) -> dict[str, Any]:
        count = dict.fromkeys(("ancestor", "alert", "descendant"), 0)
        for node in self.nodes:
            count[node.relation] += 1
        return {
            "counts": {
                "ancestors": count["ancestor"],
                "alert_processes": count["alert"],
                "descendants": count["descendant"],
            },
            "processes": [f"{n.pid} {n.name}" for n in self.nodes[:MAX_SUMMARY_PROCESSES]],
        }


def _node(event: Mapping[str, Any], relation: Relation, *, recorded: bool) -> ProcessNode:
    executable = get_path(event, "process.executable")
    name = get_path(event, "process.name") or (
        str(executable).rsplit("/", 1)[-1] if executable else "?"
    )
    parent = get_path(event, "process.parent.pid")
    return ProcessNode(
        pid=int(get_path(event, "process.pid")),
        parent_pid=int(parent) if isinstance(parent, int) else None,
        name=str(name),
        executable=str(executable) if executable else None,
        command_line=get_path(event, "process.command_line"),
        user=get_path(event, "user.name"),
        start=event_time(event) if recorded else None,
        event_id=get_path(event, "event.id") if recorded else None,
        relation=relation,
        depth=0,
    )


def _inferred_parent(child: Mapping[str, Any]) -> ProcessNode | None:
    pid = get_path(child, "process.parent.pid")
    if not isinstance(pid, int):
        return None
    executable = get_path(child, "process.parent.executable")
    name = get_path(child, "process.parent.name") or (
        str(executable).rsplit("/", 1)[-1] if executable else "?"
    )
    return ProcessNode(
        pid=pid,
        parent_pid=None,
        name=str(name),
        executable=executable,
        command_line=get_path(child, "process.parent.command_line"),
        user=None,
        start=None,
        event_id=None,
        relation="ancestor",
        depth=0,
    )


def _latest_start(store: Store, host: str, pid: int, before: datetime) -> dict[str, Any] | None:
    starts, _ = query_window(
        store, host=host, since=None, until=before, kinds=("process_start",), pids=(pid,)
    )
    return starts[-1] if starts else None


class _TreeBuilder:
    def __init__(self, store: Store, anchor: AlertAnchor, window: timedelta, max_depth: int):
        self.store = store
        self.anchor = anchor
        self.max_depth = max_depth
        self.since, self.until = anchor.window(window)
        starts, self.truncated = query_window(
            store, host=anchor.host, since=self.since, until=self.until, kinds=("process_start",)
        )
        self.children: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.starts_of: dict[int, list[datetime]] = defaultdict(list)  # pid -> start times
        for event in starts:
            self.starts_of[int(get_path(event, "process.pid"))].append(event_time(event))
            parent = get_path(event, "process.parent.pid")
            if isinstance(parent, int):
                self.children[parent].append(event)
        self.alert_pids = {
            pid for ev in anchor.events if isinstance(pid := get_path(ev, "process.pid"), int)
        }
        self.emitted: set[str] = set()

    def is_child(self, child: Mapping[str, Any], parent: Mapping[str, Any]) -> bool:
        """Entity ids decide when both sides carry them; otherwise the child must start after
        the parent and before any later process that reused the parent's pid."""
        parent_entity = get_path(parent, "process.entity_id")
        child_parent_entity = get_path(child, "process.parent.entity_id")
        if parent_entity and child_parent_entity:
            return bool(parent_entity == child_parent_entity)
        born, child_born = event_time(parent), event_time(child)
        reused = self.starts_of.get(int(get_path(parent, "process.pid")), [])
        return born <= child_born and not any(born < t <= child_born for t in reused)

    def alert_processes(self) -> list[dict[str, Any]]:
        """One start event (or, failing that, the alert event itself) per alert pid."""
        found: dict[int, dict[str, Any]] = {}
        for event in self.anchor.events:
            pid = get_path(event, "process.pid")
            if not isinstance(pid, int) or pid in found:
                continue
            if get_path(event, "sekimori.kind") == "process_start":
                found[pid] = event
            else:
                start = _latest_start(self.store, self.anchor.host, pid, event_time(event))
                found[pid] = start if start is not None else event
        return sorted(found.values(), key=event_time)[:MAX_ROOTS]

    def ancestors(self, event: Mapping[str, Any]) -> list[ProcessNode]:
        chain: list[ProcessNode] = []
        child = event
        seen = {get_path(event, "process.pid")}
        for _ in range(self.max_depth):
            ppid = get_path(child, "process.parent.pid")
            if not isinstance(ppid, int) or ppid <= 0 or ppid in seen:
                break
            seen.add(ppid)
            parent = _latest_start(self.store, self.anchor.host, ppid, event_time(child))
            if parent is None:
                inferred = _inferred_parent(child)
                if inferred is not None:
                    chain.append(inferred)
                break
            chain.append(_node(parent, "ancestor", recorded=True))
            child = parent
        chain.reverse()
        return chain

    def descendants(
        self, event: Mapping[str, Any], depth: int, out: list[ProcessNode], *, levels: int = 1
    ) -> None:
        if levels > self.max_depth:
            return
        pid = get_path(event, "process.pid")
        for child in self.children.get(pid, []) if isinstance(pid, int) else []:
            child_id = str(get_path(child, "event.id"))
            if child_id in self.emitted or not self.is_child(child, event):
                continue
            self.emitted.add(child_id)
            relation: Relation = (
                "alert" if get_path(child, "process.pid") in self.alert_pids else "descendant"
            )
            out.append(_with_depth(_node(child, relation, recorded=True), depth))
            self.descendants(child, depth + 1, out, levels=levels + 1)

    def build(self) -> list[ProcessNode]:
        nodes: list[ProcessNode] = []
        for event in self.alert_processes():
            event_id = get_path(event, "event.id")
            if event_id in self.emitted:
                continue  # already shown inside an earlier alert process's tree
            self.emitted.add(str(event_id))
            chain = self.ancestors(event)
            nodes.extend(_with_depth(node, level) for level, node in enumerate(chain))
            recorded = get_path(event, "sekimori.kind") == "process_start"
            root = _node(event, "alert", recorded=True)
            if not recorded:  # only the alert event is known: show it without a start time
                root = replace(root, start=None)
            nodes.append(_with_depth(root, len(chain)))
            self.descendants(event, len(chain) + 1, nodes)
        return nodes


def _with_depth(node: ProcessNode, depth: int) -> ProcessNode:
    return replace(node, depth=depth)


def process_family_pids(store: Store, anchor: AlertAnchor, *, window: timedelta) -> tuple[int, ...]:
    """The alert's pids and the pids of their descendants started within ±window."""
    builder = _TreeBuilder(store, anchor, window, MAX_DESCENDANT_LEVELS)
    pids = dict.fromkeys(anchor.pids)
    for event in builder.alert_processes():
        found: list[ProcessNode] = []
        builder.descendants(event, 1, found)
        pids.update(dict.fromkeys(node.pid for node in found))
    return tuple(pids)


def process_tree(
    store: Store, anchor: AlertAnchor, *, window: timedelta, max_depth: int
) -> ProcessTreeResult:
    builder = _TreeBuilder(store, anchor, window, max_depth)
    nodes = builder.build()
    return ProcessTreeResult(
        host=anchor.host,
        since=builder.since,
        until=builder.until,
        nodes=tuple(nodes),
        truncated=builder.truncated,
    )
