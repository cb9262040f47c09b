"""Chaos harness: collector and agent as processes this test starts (and alone kills, by pid),
plus the one verification every chaos test ends with: sequence numbers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from collector.models import EventQuery
from collector.registry import Registry
from collector.store.sqlite import SqliteStore
from tests.support import free_port, wait_for

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    argv: list[str]
    log: Path
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                self.argv, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
            )
        self.starts += 1

    def kill(self) -> None:
        """SIGKILL our own child, by pid."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            raise


@dataclass
class Lab:
    root: Path
    port: int = field(default_factory=free_port)
    host: str = "127.0.0.1"
    prefix: Sequence[str] = ()  # e.g. ("ip", "netns", "exec", "ns") for the collector

    @property
    def data_dir(self) -> Path:
        return self.root / "collector"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    def collector(self, *extra: str) -> Proc:
        argv = [
            *self.prefix,
            sys.executable,
            "-m",
            "tests.chaos.run_collector",
            str(self.data_dir),
            str(self.port),
            "--host",
            self.host,
            *extra,
        ]
        return Proc(argv, self.root / "collector.log")

    def token(self) -> str:
        registry = Registry(self.data_dir / "registry.db")
        try:
            return registry.create_token(ttl=300, uses=1)
        finally:
            registry.close()

    def enroll(self, state_dir: Path, prefix: Sequence[str] = ()) -> None:
        done = subprocess.run(
            [
                *prefix,
                sys.executable,
                "-m",
                "agents",
                "enroll",
                self.url,
                self.token(),
                "--ca",
                str(self.data_dir / "ca.pem"),
                "--state-dir",
                str(state_dir),
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
            cwd=REPO,
        )
        assert done.returncode == 0, done.stdout + done.stderr

    def agent(self, state_dir: Path, *extra: str, prefix: Sequence[str] = ()) -> Proc:
        argv = [
            *prefix,
            sys.executable,
            "-m",
            "tests.chaos.run_agent",
            str(state_dir),
            self.url,
            *extra,
        ]
        return Proc(argv, self.root / f"agent-{state_dir.name}.log")

    def wait_listening(self, proc: Proc) -> None:
        def ready() -> bool:
            assert proc.process is not None and proc.process.poll() is None, self.tail(proc)
            return proc.log.read_text(errors="replace").count("listening") >= proc.starts

        wait_for(ready, "collector listening")

    @staticmethod
    def tail(proc: Proc) -> str:
        return proc.log.read_text(errors="replace")[-3000:] if proc.log.exists() else ""


def stored(data_dir: Path) -> list[dict[str, Any]]:
    store = SqliteStore(data_dir / "sekimori.db")
    try:
        return store.query_events(EventQuery(limit=10_000_000))
    finally:
        store.close()


def spool_next_seq(state_dir: Path) -> int:
    return int(json.loads((state_dir / "spool" / "state.json").read_text())["next_seq"])


@dataclass(frozen=True)
class Verdict:
    last_seq: int
    stored: int
    lost: list[int]
    duplicated: list[int]
    announced: list[tuple[int, int, int]]  # (first, last, count) of gap events


def verify(data_dir: Path, state_dir: Path) -> Verdict:
    """Every seq 1..last is stored exactly once, or inside an announced gap (then not stored)."""
    last = spool_next_seq(state_dir) - 1
    events = stored(data_dir)
    seqs = Counter(e["sekimori"]["seq"] for e in events)
    gaps = [
        (g["first_seq"], g["last_seq"], g["count"])
        for e in events
        if (g := e["sekimori"].get("gap"))
    ]
    announced = {s for first, end, _ in gaps for s in range(first, end + 1)}
    lost = [s for s in range(1, last + 1) if s not in seqs and s not in announced]
    duplicated = sorted(s for s, n in seqs.items() if n > 1)
    return Verdict(last, len(events), lost, duplicated, gaps)


def delivered(data_dir: Path, state_dir: Path, until_seq: int) -> bool:
    """The agent generated up to ``until_seq`` and the collector stored its last event."""
    try:
        if spool_next_seq(state_dir) <= until_seq:
            return False
        return max((e["sekimori"]["seq"] for e in stored(data_dir)), default=0) >= until_seq
    except (OSError, ValueError):
        return False
