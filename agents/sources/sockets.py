"""Network source: new TCP/UDP connections and listeners by polling ``/proc/net``.

Each poll reads tcp, tcp6, udp and udp6, and diffs against the previous snapshot so every
connection and listener is reported once (again only if it disappears and comes back).
Direction: a connection whose local port is a listening port is inbound (accepted, ingress);
anything else is outbound (attempted, egress). Sockets are mapped to processes through
``/proc/<pid>/fd`` (socket inode -> pid); the map is rebuilt only when an unknown inode shows up.
TIME_WAIT entries (inode 0) still reveal short connections that opened and closed between two
polls, without an owner. The agent's own sockets are ignored (no feedback loop).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

from agents.errors import ConfigError
from agents.ownconns import OWN, OwnConnections
from agents.procfs import ProcFS
from agents.sources.base import Connection, Listen, Owner, Record
from agents.sources.netparse import TABLES, WILDCARDS, SocketEntry, parse_table

ConnKey = tuple[str, str, int, str, int]
ListenKey = tuple[str, str, int]


class SocketsSource:
    """Plugin: connections and listeners from /proc/net, polled every ``interval`` seconds."""

    name = "sockets"

    def __init__(
        self,
        procfs: ProcFS | None = None,
        *,
        interval: float = 0.5,
        own_pid: int | None = None,
        own: OwnConnections = OWN,
    ) -> None:
        self.procfs = procfs or ProcFS()
        self.interval = interval
        self.own_pid = own_pid or os.getpid()
        self.own = own
        self._connections: set[ConnKey] = set()
        self._listeners: set[ListenKey] = set()
        self._owners: dict[int, Owner] = {}
        self._first = True
        self.polls = 0

    def check_compatible(self) -> None:
        if self.procfs.read_text("net/tcp") is None:
            raise ConfigError(
                f"cannot read {self.procfs.root}/net/tcp",
                remedy="mount procfs, or start the agent with --no-network",
            )

    def records(self, stop: threading.Event) -> Iterator[Record]:
        while not stop.is_set():
            yield from self.poll()
            stop.wait(self.interval)

    def snapshot(self) -> list[SocketEntry]:
        entries: list[SocketEntry] = []
        for rel, transport, family in TABLES:
            text = self.procfs.read_text(rel)
            if text:
                entries.extend(parse_table(text, transport, family))
        return entries

    def poll(self) -> list[Record]:
        """One diff step: records for listeners and connections not seen in the last poll."""
        now = time.time()
        entries = self.snapshot()
        listeners = {(e.transport, e.local_ip, e.local_port): e for e in entries if e.listening}
        connections = {
            (e.transport, e.local_ip, e.local_port, e.remote_ip, e.remote_port): e
            for e in entries
            if e.connected
        }
        new_listeners = [e for k, e in listeners.items() if k not in self._listeners]
        new_connections = [e for k, e in connections.items() if k not in self._connections]
        listen_ports = {(k[0], k[1], k[2]) for k in listeners} | self._listeners
        self._resolve_owners([*new_listeners, *new_connections])
        records: list[Record] = []
        for entry in new_listeners:
            owner = self._owner(entry)
            if owner is not None and owner.pid == self.own_pid:
                continue
            records.append(
                Listen(
                    timestamp=now,
                    transport=entry.transport,
                    family=entry.family,
                    ip=entry.local_ip,
                    port=entry.local_port,
                    uid=entry.uid,
                    owner=owner,
                    initial=self._first,
                )
            )
        for entry in new_connections:
            owner = self._owner(entry)
            if owner is not None and owner.pid == self.own_pid:
                continue
            if owner is None and self.own.contains(
                entry.local_ip, entry.local_port, entry.remote_ip, entry.remote_port
            ):
                continue  # ours, closed and lingering (TIME_WAIT): see agents/ownconns.py
            inbound = entry.transport == "tcp" and (
                (entry.transport, entry.local_ip, entry.local_port) in listen_ports
                or any((entry.transport, w, entry.local_port) in listen_ports for w in WILDCARDS)
            )
            records.append(
                Connection(
                    timestamp=now,
                    transport=entry.transport,
                    family=entry.family,
                    direction="ingress" if inbound else "egress",
                    state=entry.state,
                    local_ip=entry.local_ip,
                    local_port=entry.local_port,
                    remote_ip=entry.remote_ip,
                    remote_port=entry.remote_port,
                    uid=entry.uid if entry.inode else None,
                    owner=owner,
                    initial=self._first,
                )
            )
        self._listeners = set(listeners)
        self._connections = set(connections)
        live_inodes = {e.inode for e in entries}
        self._owners = {i: o for i, o in self._owners.items() if i in live_inodes}
        self._first = False
        self.polls += 1
        return records

    def _owner(self, entry: SocketEntry) -> Owner | None:
        return self._owners.get(entry.inode) if entry.inode else None

    def _resolve_owners(self, entries: list[SocketEntry]) -> None:
        wanted = {e.inode for e in entries if e.inode and e.inode not in self._owners}
        if wanted:
            self._owners.update(self.socket_owners(wanted))

    def socket_owners(self, wanted: set[int]) -> dict[int, Owner]:
        """Map socket inodes to their owning process by walking /proc/<pid>/fd."""
        found: dict[int, Owner] = {}
        for pid in self.procfs.pids():
            fd_dir = self.procfs.root / str(pid) / "fd"
            try:
                fds = os.listdir(fd_dir)  # noqa: PTH208 - hot path
            except OSError:
                continue
            for fd in fds:
                try:
                    target = os.readlink(fd_dir / fd)  # noqa: PTH115 - hot path
                except OSError:
                    continue
                if not target.startswith("socket:["):
                    continue
                inode = int(target[8:-1])
                if inode in wanted and inode not in found:
                    stat = self.procfs.stat(pid)
                    found[inode] = Owner(
                        pid=pid,
                        name=stat.comm if stat else None,
                        executable=self.procfs.readlink(f"{pid}/exe"),
                    )
            if len(found) == len(wanted):
                break
        return found
