"""The agent's own network connections, so the socket source does not report them.

The socket source already skips sockets owned by the agent's pid, but a connection the agent
has closed (the control channel's request, a shipper reconnect) lingers in the kernel's tables
in FIN_WAIT/TIME_WAIT with no owning process, and would come back as a new "connection" event,
shipped over a new connection, seen again...: a feedback loop of noise. Every connection the
agent opens is noted here (its exact 4-tuple) and the socket source skips those 4-tuples.
Bounded; entries expire after ``TTL`` (longer than Linux's 60 s TIME_WAIT).
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections import OrderedDict
from typing import Final

TTL: Final = 180.0
MAX_ENTRIES: Final = 4096

Key = tuple[str, int, str, int]  # (local ip, local port, remote ip, remote port), normalised


def _ip(text: str) -> str:
    address = ipaddress.ip_address(text.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def key(local_ip: str, local_port: int, remote_ip: str, remote_port: int) -> Key | None:
    try:
        return (_ip(local_ip), local_port, _ip(remote_ip), remote_port)
    except ValueError:
        return None


class OwnConnections:
    def __init__(self, ttl: float = TTL, max_entries: int = MAX_ENTRIES) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._seen: OrderedDict[Key, float] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, sock: socket.socket | None) -> None:
        """Remember a connected socket of ours (no-op when it is not connected)."""
        if sock is None:
            return
        try:
            local, remote = sock.getsockname(), sock.getpeername()
        except OSError:
            return
        found = key(local[0], local[1], remote[0], remote[1])
        if found is None:
            return
        with self._lock:
            self._seen[found] = time.monotonic() + self._ttl
            self._seen.move_to_end(found)
            while len(self._seen) > self._max:
                self._seen.popitem(last=False)

    def contains(self, local_ip: str, local_port: int, remote_ip: str, remote_port: int) -> bool:
        found = key(local_ip, local_port, remote_ip, remote_port)
        if found is None:
            return False
        now = time.monotonic()
        with self._lock:
            while self._seen:  # drop expired entries (oldest first)
                oldest, deadline = next(iter(self._seen.items()))
                if deadline > now:
                    break
                del self._seen[oldest]
            return found in self._seen


OWN: Final = OwnConnections()  # the process's registry: shipper, control channel, enrollment
