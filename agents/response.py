"""Response actions the agent runs for the collector, under a local policy.

The collector can only *ask*. The agent runs an action only if the operator enabled it on this
host (``--allow-action kill_process`` ...); everything else is answered ``refused``. Isolation
never takes an address from the collector: the one peer left reachable is the collector the
agent itself is configured for (resolved from its own URL).

- ``kill_process {"pid": N[, "entity_id": E]}``: SIGKILL; refuses pid <= 1 and the agent
  itself. With ``entity_id`` (the ``process.entity_id`` of the event the analyst acts on), the
  live process must still be that one: a pid reused by another process since is not killed.
- ``isolate_host``: an nftables table ``inet sekimori_isolate`` that drops all input and
  output except loopback and TCP to/from the collector's address and port. Applied with
  ``nft -f -`` in one transaction (replaces an earlier isolation atomically).
- ``release_isolation``: deletes that table (a no-op if absent).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import signal
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agents.procfs import ProcFS

log = logging.getLogger(__name__)

TABLE = "sekimori_isolate"
NftRunner = Callable[[str], tuple[int, str]]  # nft script -> (exit code, output)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # done | failed | refused
    detail: str


def run_nft(script: str) -> tuple[int, str]:
    try:
        result = subprocess.run(
            ["nft", "-f", "-"],
            input=script,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return result.returncode, (result.stdout + result.stderr).strip()


def collector_address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or 443
    try:
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        return str(socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)[0][4][0]), port


def isolation_ruleset(address: str, port: int) -> str:
    family = "ip6" if ipaddress.ip_address(address).version == 6 else "ip"
    return (
        f"add table inet {TABLE}\n"
        f"delete table inet {TABLE}\n"
        f"table inet {TABLE} {{\n"
        "  chain input {\n"
        "    type filter hook input priority -10; policy drop;\n"
        '    iif "lo" accept\n'
        f"    {family} saddr {address} tcp sport {port} accept\n"
        "  }\n"
        "  chain output {\n"
        "    type filter hook output priority -10; policy drop;\n"
        '    oif "lo" accept\n'
        f"    {family} daddr {address} tcp dport {port} accept\n"
        "  }\n"
        "}\n"
    )


class ResponseExecutor:
    def __init__(
        self,
        allowed: frozenset[str],
        collector_url: str,
        *,
        nft: NftRunner = run_nft,
        kill: Callable[[int, int], None] = os.kill,
        procfs: ProcFS | None = None,
    ) -> None:
        self.allowed = allowed
        self.collector_url = collector_url
        self._nft = nft
        self._kill = kill
        self._procfs = procfs or ProcFS()

    def execute(self, action: str, args: dict[str, Any]) -> Outcome:
        if action not in self.allowed:
            return Outcome("refused", f"{action} is not enabled by this agent's local policy")
        try:
            if action == "kill_process":
                return self._kill_process(args)
            if action == "isolate_host":
                address, port = collector_address(self.collector_url)
                return self._apply(
                    isolation_ruleset(address, port), f"isolated; only {address}:{port}"
                )
            if action == "release_isolation":
                return self._apply(
                    f"add table inet {TABLE}\ndelete table inet {TABLE}\n", "released"
                )
        except (OSError, ValueError) as exc:
            return Outcome("failed", f"{action}: {exc}")
        return Outcome("refused", f"unknown action {action!r}")

    def _kill_process(self, args: dict[str, Any]) -> Outcome:
        pid = args.get("pid")
        if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1 or pid == os.getpid():
            return Outcome("refused", f"will not kill pid {pid!r}")
        expected = args.get("entity_id")
        if expected is not None:
            if not isinstance(expected, str) or not expected:
                return Outcome("refused", f"entity_id must be a non-empty string: {expected!r}")
            stat = self._procfs.stat(pid)
            live = self._procfs.entity_id(pid, stat.starttime_ticks) if stat else None
            if live is None:
                return Outcome("failed", f"no process {pid}")
            if live != expected:
                return Outcome(
                    "refused",
                    f"pid {pid} is now another process (entity id {live}, not {expected}):"
                    " the original has exited and its pid was reused; nothing killed",
                )
        try:
            self._kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return Outcome("failed", f"no process {pid}")
        return Outcome("done", f"killed pid {pid}")

    def _apply(self, script: str, success: str) -> Outcome:
        code, output = self._nft(script)
        if code != 0:
            return Outcome("failed", f"nft exit {code}: {output[:500]}")
        log.warning("response action applied: %s", success)
        return Outcome("done", success)
