"""launch.is_running: the lab's liveness check on the processes it started."""

from __future__ import annotations

import subprocess
import sys

from collector.lab import launch
from collector.lab.state import LabProcess


def record(process: subprocess.Popen[bytes], argv: list[str]) -> LabProcess:
    return LabProcess(name="t", namespace="skm-t", pid=process.pid, argv=tuple(argv), log="-")


def test_a_process_checked_right_after_its_start_is_running() -> None:
    """Popen returns while the child is still inside execve, before the kernel maps the new
    argv: /proc/PID/cmdline reads empty then (seen for about a third of starts here). That
    must not count as "stopped" (it once aborted `lab up` for the last agent started)."""
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    started: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(100):
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
            started.append(process)
            assert launch.is_running(record(process, argv))
            if len(started) > 10:
                old = started.pop(0)
                old.kill()
                old.wait()
    finally:
        for process in started:
            process.kill()
            process.wait()


def test_an_exited_child_is_not_running_and_gets_reaped() -> None:
    argv = ["true"]
    process = subprocess.Popen(argv)
    pid = process.pid
    for _ in range(200):  # until it is a zombie (exited, not yet reaped)
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[-1].split()[0] == "Z":
                break
        subprocess.run(["sleep", "0.01"], check=True)
    assert not launch.is_running(record(process, argv))
    process.returncode = 0  # is_running reaped it; keep Popen from waiting again
