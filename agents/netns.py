"""Network namespaces for the agent: identify them, and move the agent into one (stdlib + ctypes).

A namespace is identified by the (st_dev, st_ino) of its nsfs file: ``/run/netns/NAME`` (a bind
mount made by ``ip netns add``) and ``/proc/PID/ns/net`` (a magic link, followed by ``stat``)
give the same pair for the same namespace.

Switching: ``setns(2)`` changes the namespace of the calling *thread* only; threads started
afterwards inherit it. :func:`enter` therefore insists on being called while the process has
exactly one thread, so the whole agent (shipper, control channel, ``/proc/self/net`` readers)
lives in the target namespace. It keeps an fd of the initial namespace so that one thread can
briefly go back (:meth:`Switched.in_origin`) to open something that only works there, such as
the netlink process connector.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final, TypeVar

from agents.errors import ConfigError, PermissionDenied

CLONE_NEWNET: Final = 0x40000000
NETNS_RUN_DIR: Final = Path("/run/netns")

NamespaceId = tuple[int, int]  # (st_dev, st_ino) of the nsfs file
T = TypeVar("T")

_libc: ctypes.CDLL | None = None


def _setns(fd: int, nstype: int = CLONE_NEWNET) -> None:
    global _libc  # noqa: PLW0603 - loaded once, on first use
    if _libc is None:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    if _libc.setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns: {os.strerror(err)}")


def netns_path(name: str) -> Path:
    """``/run/netns/NAME`` for a name made by ``ip netns add``; ConfigError when bad or absent."""
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"bad network namespace name {name!r}", remedy="see `ip netns list`")
    path = NETNS_RUN_DIR / name
    if not path.exists():
        raise ConfigError(
            f"no network namespace {name!r} ({path} does not exist)",
            remedy=f"create it with `ip netns add {name}`, or see `ip netns list`",
        )
    return path


def namespace_id(path: Path | str) -> NamespaceId | None:
    """The identity of the namespace file at ``path``; None when unreadable (process gone)."""
    try:
        st = os.stat(path)  # noqa: PTH116 - hot path (one call per exec)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def process_namespace(proc_root: Path, pid: int) -> NamespaceId | None:
    """The network namespace of ``pid``; None when it exited (zombies have no namespaces)."""
    return namespace_id(f"{proc_root}/{pid}/ns/net")


def launcher_target(args: Sequence[str]) -> Path | None:
    """The namespace file a launcher's argv switches into, or None when ``args`` is not a
    recognised launcher: ``ip [OPTS] netns exec NAME ...`` and ``nsenter --net=FILE``/
    ``-nFILE``. A launcher calls ``setns`` *after* its own exec, then execs the command."""
    if not args:
        return None
    program = args[0].rsplit("/", 1)[-1]
    rest = list(args[1:])
    if program == "ip" and "netns" in rest:
        at = rest.index("netns")
        if any(opt in ("-a", "-all") for opt in rest[:at]) or rest[at + 1 : at + 2] != ["exec"]:
            return None
        name = rest[at + 2] if len(rest) > at + 2 else ""
        if not name or "/" in name or name in (".", ".."):
            return None
        return NETNS_RUN_DIR / name
    if program == "nsenter":
        for arg in rest:
            if arg == "--":
                break
            if arg.startswith("--net="):
                return Path(arg.removeprefix("--net="))
            if arg.startswith("-n") and len(arg) > 2 and not arg.startswith("--"):
                return Path(arg[2:])
    return None


def launcher_namespace(args: Sequence[str]) -> NamespaceId | None:
    """The namespace a launcher's argv switches into (None: not a launcher, or no such
    namespace)."""
    target = launcher_target(args)
    return namespace_id(target) if target is not None else None


def current_namespace() -> NamespaceId:
    """The network namespace of the calling thread."""
    ns = namespace_id("/proc/thread-self/ns/net")
    if ns is None:
        raise ConfigError("cannot read /proc/thread-self/ns/net", remedy="mount procfs")
    return ns


def named_namespace(name: str) -> NamespaceId:
    ns = namespace_id(netns_path(name))
    if ns is None:
        raise ConfigError(f"cannot stat the network namespace {name!r}")
    return ns


@dataclass(frozen=True)
class Switched:
    """The result of :func:`enter`: where the process is now, and a way back for one thread."""

    name: str
    target: NamespaceId
    origin: NamespaceId
    origin_fd: int
    target_fd: int

    def in_origin(self, action: Callable[[], T]) -> T:
        """Run ``action`` with the *calling thread* in the initial namespace, then come back.

        Sockets created by ``action`` stay in the initial namespace for their whole life."""
        _setns(self.origin_fd)
        try:
            return action()
        finally:
            _setns(self.target_fd)

    def close(self) -> None:
        for fd in (self.origin_fd, self.target_fd):
            os.close(fd)


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))  # noqa: PTH208 - counts native threads too
    except OSError:
        return threading.active_count()


def enter(name: str) -> Switched:
    """Move the whole (single-threaded) process into the network namespace ``name``.

    Raises ConfigError when the namespace does not exist or threads already run, and
    PermissionDenied without CAP_SYS_ADMIN."""
    path = netns_path(name)
    if threading.current_thread() is not threading.main_thread() or _thread_count() != 1:
        raise ConfigError(
            "switching network namespace needs a single-threaded process",
            remedy="call agents.netns.enter() before any thread starts",
        )
    origin = current_namespace()
    origin_fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        target_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        os.close(origin_fd)
        raise ConfigError(f"cannot open {path}: {exc}") from exc
    try:
        _setns(target_fd)
    except OSError as exc:
        os.close(origin_fd)
        os.close(target_fd)
        if exc.errno == 1:  # EPERM
            raise PermissionDenied(
                f"entering network namespace {name!r} needs root (CAP_SYS_ADMIN)",
                remedy="run the agent as root",
            ) from exc
        raise ConfigError(f"cannot enter network namespace {name!r}: {exc}") from exc
    target = current_namespace()
    return Switched(
        name=name, target=target, origin=origin, origin_fd=origin_fd, target_fd=target_fd
    )
