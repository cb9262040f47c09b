"""Typed records produced by sources, and the plugin protocol every source follows.

A source is a small plugin (the dissect.target style): ``check_compatible()`` raises a
:class:`~agents.errors.SekimoriError` subclass with a remedy when the source cannot run here,
and ``records(stop)`` yields typed records until ``stop`` is set. Records are plain frozen
dataclasses; :mod:`agents.events` turns them into ECS events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal, Protocol

from agents.procfs import ProcessInfo


@dataclass(frozen=True, kw_only=True)
class ProcessStart:
    """A successful execve(). ``partial`` is True when the process was gone before /proc
    could be read completely (see docs/agent.md for the fallbacks)."""

    timestamp: float  # epoch seconds of the kernel event
    process: ProcessInfo
    parent: ProcessInfo | None
    sha256: str | None
    entity_id: str | None
    parent_entity_id: str | None
    partial: bool


@dataclass(frozen=True, kw_only=True)
class ProcessEnd:
    timestamp: float
    pid: int
    ppid: int | None
    exit_code: int
    signal: int | None  # terminating signal, if killed
    process: ProcessInfo | None  # cached at fork/exec; None when the agent never saw it
    entity_id: str | None


@dataclass(frozen=True, kw_only=True)
class Owner:
    """The process owning a socket (found through /proc/<pid>/fd)."""

    pid: int
    name: str | None
    executable: str | None


@dataclass(frozen=True, kw_only=True)
class Connection:
    timestamp: float
    transport: Literal["tcp", "udp"]
    family: Literal["ipv4", "ipv6"]
    direction: Literal["egress", "ingress"]
    state: str
    local_ip: str
    local_port: int
    remote_ip: str
    remote_port: int
    uid: int | None
    owner: Owner | None
    initial: bool  # seen in the first snapshot after start (existed before the agent)


@dataclass(frozen=True, kw_only=True)
class Listen:
    timestamp: float
    transport: Literal["tcp", "udp"]
    family: Literal["ipv4", "ipv6"]
    ip: str
    port: int
    uid: int | None
    owner: Owner | None
    initial: bool


@dataclass(frozen=True, kw_only=True)
class SourceGap:
    """Telemetry a source knows it lost (e.g. netlink ENOBUFS). ``count`` is the number of
    loss episodes: the kernel does not say how many messages each one dropped."""

    timestamp: float
    source: str
    reason: str
    count: int


@dataclass(frozen=True, kw_only=True)
class DnsMessage:
    """One DNS query or answer seen on the wire by the network sensor. ``source`` is the
    packet's sender (the resolver for an answer). Names are lower-case without the trailing
    dot, with non-text bytes escaped (``\\DDD``); see :mod:`agents.sources.dnsparse`."""

    timestamp: float
    interface: str
    transport: Literal["udp", "tcp"]
    family: Literal["ipv4", "ipv6"]
    source_ip: str
    source_port: int
    destination_ip: str
    destination_port: int
    is_answer: bool
    id: int
    question_name: str | None
    question_type: str | None
    response_code: str | None  # answers only
    answers: tuple[str, ...]  # rdata as text, at most MAX_ANSWERS
    resolved_ips: tuple[str, ...]  # A/AAAA rdata
    malformed: bool  # decoding stopped early (truncated or hostile message)


FlowState = Literal[
    "syn_only", "rejected", "established", "closed", "reset", "udp", "icmp", "other"
]


@dataclass(frozen=True, kw_only=True)
class Flow:
    """A bidirectional flow seen by the network sensor. ``source`` is the initiator (the SYN
    sender for TCP, the first packet's sender otherwise); ``source_*`` counters are
    initiator -> responder, ``destination_*`` the way back. Counters are cumulative since
    ``start`` (a ``flow_update`` repeats them; the ``flow_end`` carries the totals)."""

    interface: str
    transport: str  # "tcp", "udp", "icmp" (ICMP and ICMPv6), else an IANA keyword
    family: Literal["ipv4", "ipv6"]
    source_ip: str
    source_port: int | None  # None for ICMP and other port-less protocols
    destination_ip: str
    destination_port: int | None
    state: FlowState
    start: float
    end: float
    source_bytes: int
    source_packets: int
    destination_bytes: int
    destination_packets: int
    final: bool  # True: flow_end (FIN/RST, idle, evicted); False: flow_update (still active)
    evicted: bool = False  # ended early because the flow table was full


Record = ProcessStart | ProcessEnd | Connection | Listen | SourceGap | DnsMessage | Flow


class Source(Protocol):
    name: str

    def check_compatible(self) -> None:
        """Raise PermissionDenied/ConfigError (with a remedy) when this source cannot run."""

    def records(self, stop: threading.Event) -> Iterator[Record]:
        """Yield records until ``stop`` is set."""
        ...
