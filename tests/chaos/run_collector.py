"""A collector process for chaos tests: ``python -m tests.chaos.run_collector DATA PORT``.

``--slow`` makes every event write sleep (a random choice from the given delays) to model a
slow store; ``--host``/``--tls-name`` let it listen inside a network namespace.
"""

from __future__ import annotations

import argparse
import random
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from collector.models import WriteResult
from collector.service import CollectorConfig, CollectorThread, build_collector
from collector.store.sqlite import SqliteStore


class SlowStore:
    def __init__(self, inner: SqliteStore, delays: list[float]) -> None:
        self._inner = inner
        self._delays = delays

    def write_events(self, events: Sequence[dict[str, Any]]) -> WriteResult:
        time.sleep(random.choice(self._delays))
        return self._inner.write_events(events)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("port", type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls-name", action="append", default=[])
    parser.add_argument("--slow", type=float, nargs="*", default=[])
    args = parser.parse_args()
    config = CollectorConfig(
        data_dir=args.data_dir, host=args.host, port=args.port, tls_names=tuple(args.tls_name)
    )
    collector = build_collector(config)
    if args.slow:
        collector.pipeline.store = SlowStore(collector.store, args.slow)  # type: ignore[assignment]
    server = CollectorThread(collector)
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("listening", flush=True)
    while not stop.wait(0.2):
        pass
    server.stop()


if __name__ == "__main__":
    main()
