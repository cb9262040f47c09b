"""Test kit for agent tests: a virtual /proc, a contract checker, a throwaway PKI and HTTPS
collector stand-in. Fixtures wrapping these live in conftest.py."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agents.events import EventBuilder
from agents.hostinfo import HostInfo
from agents.procfs import ProcFS
from agents.schema import (
    COLLECTOR_FIELDS,
    FIELD_TYPES,
    KIND_REQUIRED,
    REQUIRED_FIELDS,
    compute_event_id,
    flatten,
    parse_iso,
)

USERS = {0: "root", 1000: "alice"}


class FakeProc:
    """Builds a virtual /proc tree: processes (stat, status, cmdline, exe, cwd, fd) and
    /proc/net tables."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        (root / "stat").write_text("cpu  1 2 3 4\nbtime 1700000000\nprocesses 9\n")
        (root / "sys/kernel/random").mkdir(parents=True)
        (root / "sys/kernel/random/boot_id").write_text("0b0b0b0b-0000-4000-8000-000000000001\n")
        (root / "net").mkdir()
        for table in ("tcp", "tcp6", "udp", "udp6"):
            self.set_net(table, [])

    def procfs(self) -> ProcFS:
        return ProcFS(self.root, user_resolver=USERS.get, clock_ticks=100)

    def add(
        self,
        pid: int,
        *,
        exe: str | None,
        args: list[str],
        ppid: int,
        uid: int = 1000,
        cwd: str = "/home/alice",
        comm: str | None = None,
        starttime: int = 12345,
        sockets: dict[int, int] | None = None,
    ) -> Path:
        base = self.root / str(pid)
        base.mkdir()
        if exe is not None:
            (base / "exe").symlink_to(exe)
            (base / "cwd").symlink_to(cwd)
        (base / "cmdline").write_bytes(b"".join(a.encode() + b"\0" for a in args))
        name = comm or (exe.rsplit("/", 1)[-1] if exe else "?")[:15]
        rest = ["S", str(ppid)] + ["0"] * 17 + [str(starttime)] + ["0"] * 10
        (base / "stat").write_text(f"{pid} ({name}) {' '.join(rest)}\n")
        (base / "status").write_text(f"Name:\t{name}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
        (base / "fd").mkdir()
        for fd, inode in (sockets or {}).items():
            (base / "fd" / str(fd)).symlink_to(f"socket:[{inode}]")
        return base

    def zombie(self, pid: int) -> None:
        """What a zombie looks like: exe and cwd unreadable, empty cmdline, stat kept."""
        base = self.root / str(pid)
        for name in ("exe", "cwd"):
            (base / name).unlink(missing_ok=True)
        (base / "cmdline").write_bytes(b"")

    def remove(self, pid: int) -> None:
        base = self.root / str(pid)
        for path in sorted(base.rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        base.rmdir()

    def set_net(self, table: str, rows: list[str]) -> None:
        header = (
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt"
            "   uid  timeout inode\n"
        )
        lines = [f"{i:4d}: {row}" for i, row in enumerate(rows)]
        (self.root / "net" / table).write_text(header + "".join(line + "\n" for line in lines))


def net_row(local: str, remote: str, state: str, uid: int, inode: int) -> str:
    return (
        f"{local} {remote} {state} 00000000:00000000 00:00000000 00000000 {uid:5d} 0 {inode} "
        "1 0000000000000000 20 4 30 10 -1"
    )


def check_contract(event: dict[str, Any]) -> None:
    """Assert an event satisfies agents/schema.py the way the collector will check it."""
    fields = dict(flatten(event))
    for path, value in fields.items():
        assert path in FIELD_TYPES, f"unknown field {path}"
        assert path not in COLLECTOR_FIELDS, path
        kind = FIELD_TYPES[path]
        if kind in ("str", "timestamp", "ip"):
            assert isinstance(value, str), (path, value)
        if kind == "timestamp":
            parse_iso(value)
            assert value.endswith("Z")
        if kind == "ip":
            ipaddress.ip_address(value)
        if kind == "int":
            assert isinstance(value, int) and not isinstance(value, bool), (path, value)
        if kind.startswith("list"):
            assert isinstance(value, list) and all(isinstance(v, str) for v in value), path
    for path in (*REQUIRED_FIELDS, *KIND_REQUIRED[fields["sekimori.kind"]]):
        assert path in fields, f"missing {path}"
    assert fields["event.id"] == compute_event_id(event)
    json.dumps(event, ensure_ascii=False).encode("utf-8")  # valid Unicode


# -- a throwaway PKI and HTTPS collector stand-in ---------------------------------------------
@dataclass
class Pki:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_pki(directory: Path, common: str = "sekimori test CA") -> Pki:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("collector"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    pki = Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    pki.ca_pem.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    pki.cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pki.key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pki


@dataclass
class FakeCollector:
    """Answers POST /v1/events from a script of (status, headers, body|None) replies; None body
    means a proper IngestResponse acking the batch. After the script: always ack."""

    url: str
    script: list[tuple[int, dict[str, str], bytes | None]] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for r in self.requests for e in r["events"]]


def make_builder() -> EventBuilder:
    host = HostInfo(
        name="pc-01",
        hostname="pc-01",
        ips=("10.1.0.5",),
        os_name="Debian GNU/Linux",
        os_family="debian",
        kernel="6.1.0",
    )
    return EventBuilder(agent_id="agent-1", agent_name="pc-01", host=host, user_resolver=USERS.get)
