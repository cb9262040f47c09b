"""The kernel netlink process connector (``NETLINK_CONNECTOR``/``CN_IDX_PROC``), stdlib only.

Wire layout (native endianness, see linux/netlink.h, linux/connector.h, linux/cn_proc.h)::

    struct nlmsghdr   { u32 len; u16 type; u16 flags; u32 seq; u32 pid; }            16 bytes
    struct cn_msg     { u32 idx; u32 val; u32 seq; u32 ack; u16 len; u16 flags; }    20 bytes
    struct proc_event { u32 what; u32 cpu; u64 timestamp_ns; union event_data; }
      fork: parent_pid, parent_tgid, child_pid, child_tgid
      exec: process_pid, process_tgid
      exit: process_pid, process_tgid, exit_code, exit_signal[, parent_pid, parent_tgid]
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from agents.errors import ConfigError, PermissionDenied

NETLINK_CONNECTOR: Final = 11
CN_IDX_PROC: Final = 1
CN_VAL_PROC: Final = 1
PROC_CN_MCAST_LISTEN: Final = 1
PROC_CN_MCAST_IGNORE: Final = 2
NLMSG_DONE: Final = 3
SO_RCVBUFFORCE: Final = 33

PROC_EVENT_FORK: Final = 0x00000001
PROC_EVENT_EXEC: Final = 0x00000002
PROC_EVENT_EXIT: Final = 0x80000000

_NLMSGHDR = struct.Struct("=IHHII")
_CN_MSG = struct.Struct("=IIIIHH")
_EVENT_HEAD = struct.Struct("=IIQ")
_FOUR = struct.Struct("=IIII")
_SIX = struct.Struct("=IIIIII")
_EVENT_OFFSET: Final = _NLMSGHDR.size + _CN_MSG.size


@dataclass(frozen=True, slots=True)
class ProcEvent:
    """One decoded proc_event. Unused fields are 0."""

    what: int
    timestamp_ns: int  # CLOCK_MONOTONIC
    pid: int  # fork: child pid; exec/exit: process pid (a thread id)
    tgid: int  # fork: child tgid; exec/exit: process tgid
    parent_pid: int = 0
    parent_tgid: int = 0
    exit_code: int = 0  # raw wait status: (code << 8) | terminating signal
    exit_signal: int = 0  # the signal sent to the parent (usually SIGCHLD)


def subscribe_message(op: int = PROC_CN_MCAST_LISTEN) -> bytes:
    payload = struct.pack("=I", op)
    cn = _CN_MSG.pack(CN_IDX_PROC, CN_VAL_PROC, 0, 0, len(payload), 0) + payload
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(cn), NLMSG_DONE, 0, 0, os.getpid()) + cn


def parse_message(data: bytes) -> list[ProcEvent]:
    """Decode every FORK/EXEC/EXIT proc_event in one datagram; others are ignored."""
    events: list[ProcEvent] = []
    offset = 0
    while offset + _EVENT_OFFSET + _EVENT_HEAD.size <= len(data):
        msg_len = _NLMSGHDR.unpack_from(data, offset)[0]
        if msg_len < _EVENT_OFFSET or offset + msg_len > len(data):
            break
        idx, _val, _seq, _ack, cn_len, _flags = _CN_MSG.unpack_from(data, offset + _NLMSGHDR.size)
        base = offset + _EVENT_OFFSET
        if idx == CN_IDX_PROC and cn_len >= _EVENT_HEAD.size + _FOUR.size // 2:
            event = _parse_event(data, base, min(cn_len, msg_len - _EVENT_OFFSET))
            if event is not None:
                events.append(event)
        offset += (msg_len + 3) & ~3
    return events


def _parse_event(data: bytes, base: int, size: int) -> ProcEvent | None:
    what, _cpu, ts = _EVENT_HEAD.unpack_from(data, base)
    body = base + _EVENT_HEAD.size
    avail = size - _EVENT_HEAD.size
    if what == PROC_EVENT_FORK and avail >= _FOUR.size:
        ppid, ptgid, cpid, ctgid = _FOUR.unpack_from(data, body)
        return ProcEvent(what, ts, cpid, ctgid, parent_pid=ppid, parent_tgid=ptgid)
    if what == PROC_EVENT_EXEC and avail >= 8:
        pid, tgid = struct.unpack_from("=II", data, body)
        return ProcEvent(what, ts, pid, tgid)
    if what == PROC_EVENT_EXIT and avail >= _FOUR.size:
        pid, tgid, code, signal = _FOUR.unpack_from(data, body)
        ppid = ptgid = 0
        if avail >= _SIX.size:
            ppid, ptgid = _SIX.unpack_from(data, body)[4:]
        return ProcEvent(
            what,
            ts,
            pid,
            tgid,
            parent_pid=ppid,
            parent_tgid=ptgid,
            exit_code=code,
            exit_signal=signal,
        )
    return None


class ConnectorSocket:
    """A subscribed process-connector socket with a large receive buffer.

    ``receive()`` returns decoded events and counts kernel overruns (ENOBUFS) in ``overruns``
    instead of raising: each one means the kernel dropped at least one message.
    """

    def __init__(self, rcvbuf: int = 16 * 1024 * 1024) -> None:
        try:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_CONNECTOR)
            sock.bind((0, CN_IDX_PROC))
        except PermissionError as exc:
            raise PermissionDenied(
                "the netlink process connector needs root (CAP_NET_ADMIN)",
                remedy="run the agent as root, or start it with --no-process",
            ) from exc
        except OSError as exc:
            raise ConfigError(
                f"netlink process connector unavailable: {exc}",
                remedy="the kernel needs CONFIG_PROC_EVENTS=y; or use --no-process",
            ) from exc
        self._sock = sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:  # without CAP_NET_ADMIN fall back to the capped SO_RCVBUF
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.overruns = 0
        try:
            sock.send(subscribe_message(PROC_CN_MCAST_LISTEN))
        except ConnectionRefusedError as exc:  # the connector exists in the initial netns only
            sock.close()
            raise ConfigError(
                "the netlink process connector refused the subscription: it works only in "
                "the initial network namespace",
                remedy="start the agent in the initial namespace with --netns NAME "
                "instead of under `ip netns exec`, or pass --no-process",
            ) from exc

    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self, timeout: float) -> list[ProcEvent]:
        """Wait up to ``timeout`` s, then drain every queued datagram without blocking."""
        ready, _, _ = select.select([self._sock], [], [], timeout)
        if not ready:
            return []
        events: list[ProcEvent] = []
        while True:
            try:
                data = self._sock.recv(65536, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return events
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.overruns += 1
                    continue
                raise
            events.extend(parse_message(data))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.send(subscribe_message(PROC_CN_MCAST_IGNORE))
        self._sock.close()


class PreopenedConnector:
    """A ``socket_factory`` for an agent that left the initial network namespace: the first
    call returns the socket opened before the switch; later calls (a restart after a source
    error) open a new one through ``reopen`` (e.g. ``Switched.in_origin``)."""

    def __init__(self, first: ConnectorSocket, reopen: Callable[[], ConnectorSocket]) -> None:
        self._first: ConnectorSocket | None = first
        self._reopen = reopen

    def __call__(self) -> ConnectorSocket:
        first, self._first = self._first, None
        return first if first is not None else self._reopen()

    def close(self) -> None:
        """Close the pre-opened socket if no source took it."""
        if self._first is not None:
            self._first.close()
            self._first = None
