"""A stateful model test of the spool (hypothesis): appends, partial shipping with acks,
restarts, bit flips and truncated tails in any order. At the end, after a full drain, every
sequence number ever assigned was delivered exactly once or named by a delivered gap event."""

from __future__ import annotations

import json
import random
import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from agents.spool import Spool
from tests.agents.agent_testkit import make_builder


class SpoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.builder = make_builder()
        self.spool = self._open()
        self.delivered: list[int] = []
        self.announced: set[int] = set()
        self.acked = 0

    def _open(self) -> Spool:
        return Spool(
            self.dir, make_gap=self.builder.spool_gap, max_bytes=24_000, segment_bytes=4_000
        )

    def _reopen(self) -> None:
        self.spool.close()
        self.spool = self._open()

    @rule(count=st.integers(1, 30))
    def append(self, count: int) -> None:
        self.spool.append([self.builder.heartbeat(f"m{i}") for i in range(count)])

    @rule(max_events=st.integers(1, 40))
    def ship(self, max_events: int) -> None:
        batch = self.spool.read_batch(max_events, 10**9)
        if batch is None:
            return
        for payload in batch.payloads:
            event = json.loads(payload)
            self.delivered.append(event["sekimori"]["seq"])
            gap = event["sekimori"].get("gap")
            if gap:
                self.announced.update(range(gap["first_seq"], gap["last_seq"] + 1))
        self.spool.ack(batch.last_seq)
        self.acked = batch.last_seq

    @rule()
    def restart(self) -> None:
        self._reopen()

    @rule(seed=st.integers(0, 2**32 - 1))
    def flip_a_bit(self, seed: int) -> None:
        rng = random.Random(seed)
        self.spool.close()
        segments = sorted(self.dir.glob("*.seg"))
        if segments:
            path = rng.choice(segments)
            data = bytearray(path.read_bytes())
            if data:
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
                path.write_bytes(bytes(data))
        self.spool = self._open()

    @rule(cut=st.integers(1, 300))
    def truncate_tail(self, cut: int) -> None:
        self.spool.close()
        segments = sorted(self.dir.glob("*.seg"))
        if segments:
            data = segments[-1].read_bytes()
            segments[-1].write_bytes(data[: max(0, len(data) - cut)])
        self.spool = self._open()

    @invariant()
    def nothing_delivered_twice(self) -> None:
        assert len(self.delivered) == len(set(self.delivered))

    def teardown(self) -> None:
        try:
            self._reopen()
            while (batch := self.spool.read_batch(1000, 10**9)) is not None:
                for payload in batch.payloads:
                    event = json.loads(payload)
                    self.delivered.append(event["sekimori"]["seq"])
                    if gap := event["sekimori"].get("gap"):
                        self.announced.update(range(gap["first_seq"], gap["last_seq"] + 1))
                self.spool.ack(batch.last_seq)
            assert len(self.delivered) == len(set(self.delivered)), "a record was shipped twice"
            every = set(range(1, self.spool.next_seq))
            missing = every - set(self.delivered) - self.announced
            assert not missing, f"lost without announcement: {sorted(missing)[:20]}"
            self.spool.close()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


SpoolMachine.TestCase.settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
test_spool_model = SpoolMachine.TestCase
