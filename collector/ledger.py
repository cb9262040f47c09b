"""The triage ledger's hash chain: every analyst step links to the one before.

Each record's hash is sha256(previous hash || canonical JSON of the record), starting from
``GENESIS_HASH``. Editing, deleting or reordering a record breaks the chain at that point,
which ``verify_triage_chain`` reports.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from agents.schema import canonical_json, to_iso
from collector.models import TriageRecord

GENESIS_HASH = "0" * 64


def triage_hash(prev_hash: str, record: TriageRecord) -> str:
    """Hash of one ledger record: sha256(prev_hash || canonical JSON of its content)."""
    body = canonical_json(
        {
            "alert_id": record.alert_id,
            "playbook_id": record.playbook_id,
            "step_id": record.step_id,
            "kind": record.kind,
            "actor": record.actor,
            "at": to_iso(record.at),
            "detail": record.detail,
            "seq": record.seq,
        }
    )
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def verify_triage_chain(records: Sequence[TriageRecord]) -> list[str]:
    """Problems found in a full ledger read in seq order (empty list = intact)."""
    problems: list[str] = []
    prev = GENESIS_HASH
    for expected_seq, record in enumerate(records, start=1):
        if record.seq != expected_seq:
            problems.append(f"record {record.seq}: expected seq {expected_seq} (missing record)")
        if record.prev_hash != prev:
            problems.append(f"record {record.seq}: prev_hash does not link to record before")
        if triage_hash(record.prev_hash, record) != record.hash:
            problems.append(f"record {record.seq}: content does not match its hash (edited)")
        prev = record.hash
    return problems
