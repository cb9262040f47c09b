"""An agent process for chaos tests: the real runtime (spool, shipper, control loop) with
the kernel sources off and a synthetic source that appends heartbeat events to the spool at
``--rate`` per second until the spool has assigned ``--until-seq`` sequence numbers (so a
restarted agent continues where the killed one stopped). SIGTERM stops it gracefully.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from dataclasses import replace
from pathlib import Path

from agents.config import AgentConfig
from agents.runtime import Agent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--until-seq", type=int, default=1000)
    parser.add_argument("--spool-max", type=int, default=64 * 1024 * 1024)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--allow", action="append", default=[], help="response action to enable")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    config = AgentConfig(
        collector_url=args.url,
        state_dir=args.state_dir,
        name="chaos",
        process=False,
        network=False,
        heartbeat_interval=3600,
        spool_max_bytes=args.spool_max,
        spool_segment_bytes=min(4 * 1024 * 1024, args.spool_max // 4),
        backoff_max=1.0,
        ship_interval=0.1,
        batch_max_events=200,
        drain_timeout=10.0,
        control_interval=0.5,
        allowed_actions=frozenset(args.allow),
    )
    agent = Agent(config)
    agent.shipper.config = replace(agent.shipper.config, timeout=args.timeout)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def generate() -> None:
        n = 0
        while not stop.is_set() and agent.spool.next_seq <= args.until_seq:
            agent.spool.append([agent.builder.heartbeat(f"chaos {n}")])
            n += 1
            stop.wait(1.0 / args.rate)
        print("generated", flush=True)

    threading.Thread(target=generate, daemon=True).start()
    agent.run(stop)


if __name__ == "__main__":
    main()
