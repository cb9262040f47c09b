"""Read process facts from a /proc tree whose root is injectable (a virtual /proc in tests).

Every reader is tolerant: a process may exit between two reads, so missing files give ``None``
instead of an exception. Only the standard library is used.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

MAX_COMMAND_LINE = 32 * 1024  # longer command lines are cut (and the event tagged "truncated")
MAX_ARGS = 1024  # the collector refuses longer lists; args_count keeps the real count

UserResolver = Callable[[int], str | None]
Volatile = tuple[str | None, tuple[str, ...], str | None]  # (exe, args, cwd)


def system_user_name(uid: int) -> str | None:
    """uid -> login name through NSS (``pwd``); None when unknown."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@dataclass(frozen=True, kw_only=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` the agent uses."""

    comm: str
    state: str
    ppid: int
    starttime_ticks: int


@dataclass(frozen=True, kw_only=True)
class ProcessInfo:
    """What could be read about one process; fields are None when unreadable (process gone)."""

    pid: int
    executable: str | None = None
    args: tuple[str, ...] = ()
    cwd: str | None = None
    uid: int | None = None
    ppid: int | None = None
    comm: str | None = None
    start: float | None = None  # epoch seconds
    starttime_ticks: int | None = None

    @property
    def name(self) -> str | None:
        if self.executable:
            return self.executable.rsplit("/", 1)[-1] or None
        return self.comm

    @property
    def command_line(self) -> str | None:
        return join_args(self.args) if self.args else None

    @property
    def complete(self) -> bool:
        return self.executable is not None and bool(self.args)


def join_args(args: tuple[str, ...] | list[str]) -> str:
    """Shell-join argv the way a human would type it; cut at MAX_COMMAND_LINE characters."""
    text = " ".join(shlex.quote(arg) if arg else "''" for arg in args)
    return text[:MAX_COMMAND_LINE]


def parse_stat(text: str) -> Stat | None:
    """Parse ``/proc/<pid>/stat``; comm may contain spaces and parentheses."""
    open_at, close_at = text.find("("), text.rfind(")")
    if open_at < 0 or close_at < open_at:
        return None
    rest = text[close_at + 2 :].split()
    if len(rest) < 20:
        return None
    try:
        return Stat(
            comm=text[open_at + 1 : close_at],
            state=rest[0],
            ppid=int(rest[1]),
            starttime_ticks=int(rest[19]),
        )
    except ValueError:
        return None


class ProcFS:
    """A /proc tree. ``root`` is ``/proc`` on a live host or a directory built by a test."""

    def __init__(
        self,
        root: Path = Path("/proc"),
        *,
        user_resolver: UserResolver = system_user_name,
        clock_ticks: int | None = None,
    ) -> None:
        self.root = root
        self._prefix = f"{root}/"  # plain strings: Path joins cost microseconds per event
        self._resolve_user = user_resolver
        self._users: dict[int, str | None] = {}
        self.clock_ticks = clock_ticks or os.sysconf("SC_CLK_TCK")
        self._boot_time: float | None = None
        self._boot_id: str | None = None

    @property
    def live(self) -> bool:
        return self.root == Path("/proc")

    def boot_time(self) -> float:
        """Epoch seconds at boot. Live: from CLOCK_BOOTTIME (sub-second); else ``btime``."""
        if self._boot_time is None:
            if self.live:
                self._boot_time = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
            else:
                self._boot_time = self._btime()
        return self._boot_time

    def _btime(self) -> float:
        text = self.read_text("stat") or ""
        for line in text.splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
        return 0.0

    def boot_id(self) -> str:
        if self._boot_id is None:
            self._boot_id = (self.read_text("sys/kernel/random/boot_id") or "").strip()
        return self._boot_id

    def user_name(self, uid: int) -> str | None:
        if uid not in self._users:
            self._users[uid] = self._resolve_user(uid)
        return self._users[uid]

    # -- raw readers ---------------------------------------------------------------------------
    def read_bytes(self, rel: str) -> bytes | None:
        try:
            with open(self._prefix + rel, "rb") as handle:
                return handle.read()
        except OSError:
            return None

    def read_text(self, rel: str) -> str | None:
        data = self.read_bytes(rel)
        return None if data is None else data.decode("utf-8", "backslashreplace")

    def readlink(self, rel: str) -> str | None:
        try:
            target = os.readlink(os.fsencode(self._prefix + rel))  # noqa: PTH115 - hot path
        except OSError:
            return None
        # Non-UTF-8 names become \x escapes: events must be valid Unicode (I-JSON).
        return target.decode("utf-8", "backslashreplace").removesuffix(" (deleted)")

    def pids(self) -> list[int]:
        try:
            names = os.listdir(self.root)  # noqa: PTH208 - hot path
        except OSError:
            return []
        return sorted(int(name) for name in names if name.isdigit())

    # -- process facts -------------------------------------------------------------------------
    def stat(self, pid: int) -> Stat | None:
        text = self.read_text(f"{pid}/stat")
        return parse_stat(text) if text else None

    def effective_uid(self, pid: int) -> int | None:
        text = self.read_text(f"{pid}/status") or ""
        for line in text.splitlines():
            if line.startswith("Uid:"):
                fields = line.split()
                return int(fields[2]) if len(fields) > 2 else None
        return None

    def args(self, pid: int) -> tuple[str, ...]:
        raw = self.read_bytes(f"{pid}/cmdline") or b""
        if not raw:
            return ()
        text = raw.decode("utf-8", "backslashreplace")
        return tuple(text.rstrip("\0").split("\0"))

    def volatile(self, pid: int) -> Volatile:
        """What disappears first when a process exits (a zombie keeps only stat and status):
        the executable, argv and cwd. Read these right on the exec event."""
        return self.readlink(f"{pid}/exe"), self.args(pid), self.readlink(f"{pid}/cwd")

    def process(self, pid: int, volatile: Volatile | None = None) -> ProcessInfo:
        """Read everything about ``pid`` (``volatile`` if already read by :meth:`volatile`)."""
        executable, args, cwd = volatile or self.volatile(pid)
        stat = self.stat(pid)
        uid = self.effective_uid(pid)
        start = None
        if stat is not None:
            start = self.boot_time() + stat.starttime_ticks / self.clock_ticks
        return ProcessInfo(
            pid=pid,
            executable=executable,
            args=args,
            cwd=cwd,
            uid=uid,
            ppid=stat.ppid if stat else None,
            comm=stat.comm if stat else None,
            start=start,
            starttime_ticks=stat.starttime_ticks if stat else None,
        )

    def entity_id(self, pid: int, starttime_ticks: int | None) -> str | None:
        """A process id unique across pid reuse and reboots (ECS ``process.entity_id``)."""
        if starttime_ticks is None:
            return None
        seed = f"{self.boot_id()}:{pid}:{starttime_ticks}".encode()
        return hashlib.sha256(seed).hexdigest()[:24]


class HashCache:
    """sha256 of executables, cached by (dev, inode, mtime_ns, size) so a binary is read once."""

    def __init__(self, max_entries: int = 4096, max_file_bytes: int = 256 * 1024 * 1024) -> None:
        self._cache: dict[tuple[int, int, int, int], str] = {}
        self._max_entries = max_entries
        self._max_file_bytes = max_file_bytes
        self.hashed = 0  # files actually read (cache misses)

    def sha256(self, *candidates: Path) -> str | None:
        """Hash the first candidate that can be opened (e.g. /proc/<pid>/exe, then the path)."""
        for path in candidates:
            try:
                with open(path, "rb") as handle:
                    info = os.fstat(handle.fileno())
                    key = (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)
                    cached = self._cache.get(key)
                    if cached is not None:
                        return cached
                    if info.st_size > self._max_file_bytes:
                        return None
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
            except OSError:
                continue
            if len(self._cache) >= self._max_entries:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = digest
            self.hashed += 1
            return digest
        return None
