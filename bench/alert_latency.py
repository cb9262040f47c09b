"""Action-to-alert latency through the real stack (`sekimori up`: agent + collector + rules).

For each round, a unique suspicious command (`sh -c 'echo <b64> | base64 -d | sh'`) and a
unique benign command (`/bin/true <marker>`) run at the same moment; we poll the store until
(a) the benign process's event is stored — the baseline: pure telemetry latency — and
(b) the alert for the suspicious one exists. The ratio b/a shows what detection adds on top
of delivery. Needs root (process connector).

    sudo .venv/bin/python bench/alert_latency.py --rounds 30
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

TITLE = "Base64-Decoded Payload Executed by a Shell"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def poll(db: Path, sql: str, args: tuple[str, ...], timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if db.exists():
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
            try:
                if conn.execute(sql, args).fetchone():
                    return time.monotonic()
            except sqlite3.OperationalError:
                pass
            finally:
                conn.close()
        time.sleep(0.005)
    raise TimeoutError(sql)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the process connector needs it")
    sekimori = str(Path(sys.executable).with_name("sekimori"))
    with tempfile.TemporaryDirectory(prefix="sekimori-bench-") as tmp:
        data = Path(tmp)
        up = subprocess.Popen(
            [sekimori, "up", "--data-dir", str(data), "--port", str(free_port())],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        db = data / "sekimori.db"
        try:
            poll(db, "SELECT 1 FROM events LIMIT 1", ())
            stored: list[float] = []
            alerted: list[float] = []
            for _ in range(args.rounds):
                marker = uuid.uuid4().hex
                payload = base64.b64encode(f"true {marker}".encode()).decode()
                t0 = time.monotonic()
                subprocess.run(["/bin/true", marker], check=True)
                subprocess.run(["sh", "-c", f"echo {payload} | base64 -d | sh"], check=True)
                t_event = poll(db, "SELECT 1 FROM events WHERE instr(doc, ?) > 0", (marker,))
                t_alert = poll(
                    db,
                    "SELECT 1 FROM alerts a JOIN events e ON instr(a.event_ids, e.id) > 0"
                    " WHERE a.title = ? AND instr(e.doc, ?) > 0",
                    (TITLE, payload),
                )
                stored.append(t_event - t0)
                alerted.append(t_alert - t0)
                time.sleep(0.2)
        finally:
            up.send_signal(signal.SIGTERM)
            up.wait(30)
    result = {
        "rounds": args.rounds,
        "event_stored_s": {"median": statistics.median(stored), "p95": pct(stored, 0.95)},
        "alert_s": {
            "median": statistics.median(alerted),
            "p95": pct(alerted, 0.95),
            "max": max(alerted),
        },
        "ratio_alert_over_stored_median": statistics.median(alerted) / statistics.median(stored),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
