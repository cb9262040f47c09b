"""The agent's events pass the collector's own validator (one contract, two sides)."""

from __future__ import annotations

import random
from pathlib import Path

from agents.events import EventBuilder
from agents.procfs import MAX_ARGS, ProcessInfo
from agents.shipper import Shipper, ShipperConfig
from agents.sources.base import (
    Connection,
    Listen,
    Owner,
    ProcessEnd,
    ProcessStart,
    Record,
    SourceGap,
)
from agents.spool import Spool
from collector.validate import Limits, parse_batch
from tests.agents.agent_testkit import Pki


def records() -> list[Record]:
    huge = ProcessInfo(
        pid=10,
        executable="/usr/bin/xargs",
        args=("rm", *(f"f\\xe9{i}" for i in range(2000))),
        cwd="/tmp",
        uid=1000,
        ppid=1,
        comm="xargs",
        start=1.7e9,
        starttime_ticks=5,
    )
    owner = Owner(pid=10, name="curl", executable="/usr/bin/curl")
    return [
        ProcessStart(
            timestamp=1.7e9,
            process=huge,
            parent=None,
            sha256="ab" * 32,
            entity_id="e1",
            parent_entity_id=None,
            partial=False,
        ),
        ProcessStart(
            timestamp=1.7e9,
            process=ProcessInfo(pid=11, executable="unknown", ppid=1),
            parent=None,
            sha256=None,
            entity_id=None,
            parent_entity_id=None,
            partial=True,
        ),
        ProcessEnd(
            timestamp=1.7e9, pid=10, ppid=1, exit_code=143, signal=15, process=huge, entity_id="e1"
        ),
        ProcessEnd(
            timestamp=1.7e9,
            pid=12,
            ppid=None,
            exit_code=0,
            signal=None,
            process=None,
            entity_id=None,
        ),
        Connection(
            timestamp=1.7e9,
            transport="tcp",
            family="ipv6",
            direction="egress",
            state="SYN_SENT",
            local_ip="2001:db8::5",
            local_port=40000,
            remote_ip="2001:db8::1",
            remote_port=443,
            uid=1000,
            owner=owner,
            initial=False,
        ),
        Connection(
            timestamp=1.7e9,
            transport="tcp",
            family="ipv4",
            direction="ingress",
            state="TIME_WAIT",
            local_ip="10.1.0.5",
            local_port=22,
            remote_ip="10.2.0.7",
            remote_port=5000,
            uid=None,
            owner=None,
            initial=True,
        ),
        Listen(
            timestamp=1.7e9,
            transport="udp",
            family="ipv4",
            ip="0.0.0.0",
            port=68,
            uid=0,
            owner=None,
            initial=True,
        ),
        SourceGap(timestamp=1.7e9, source="proc_connector", reason="netlink_enobufs", count=3),
    ]


def test_every_kind_passes_the_collector_validator(
    tmp_path: Path, builder: EventBuilder, pki: Pki
) -> None:
    spool = Spool(
        tmp_path / "spool", make_gap=builder.spool_gap, max_bytes=1 << 22, segment_bytes=1 << 20
    )
    events = [builder.build(r) for r in records()]
    events.append(builder.heartbeat("hb"))
    events.append(builder.spool_gap(first_seq=1, last_seq=4, count=4, reason="spool_full"))
    spool.append(events)
    shipper = Shipper(
        spool,
        ShipperConfig(url="https://127.0.0.1:1", ca_file=pki.ca_pem),
        agent_id="agent-1",
        agent_name="pc-01",
        rng=random.Random(0),
    )
    batch = spool.read_batch(1000, 1 << 22)
    assert batch is not None
    parsed = parse_batch(shipper.body(batch), Limits())
    assert [r.reason for r in parsed.rejected] == []
    assert len(parsed.valid) == len(events)
    assert parsed.max_seq == len(events)
    first = parsed.valid[0][1]
    assert len(first["process"]["args"]) == MAX_ARGS
    assert first["process"]["args_count"] == 2001
    assert first["tags"] == ["truncated"]
