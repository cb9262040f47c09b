"""The command channel for response actions (collector side).

An analyst (or a playbook) *requests* an action for one agent; the agent *fetches* pending
commands over mutual TLS, runs only what its local policy enables, and *reports* a result.
Commands live in the registry file; every request and every result is appended to the
hash-chained audit ledger of the event store (kind ``"action"``), so ``sekimori audit
verify`` covers them. A command fetched but never answered is offered again after
``redeliver_after`` seconds (the agent remembers what it ran, so it is not run twice).
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from agents.errors import ConfigError, NotFoundError
from agents.schema import COMMAND_RESULT_STATES, RESPONSE_ACTIONS
from collector.models import TriageRecord
from collector.registry import Registry
from collector.store.base import Store

PLAYBOOK_ID: Final = "response-actions"


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    id: str
    agent_id: str
    action: str
    args: dict[str, Any]
    state: str  # pending | sent | done | failed | refused
    created: float
    actor: str
    alert_id: str
    result: dict[str, Any] | None

    def wire(self) -> dict[str, Any]:
        """What the agent receives (agents/schema.py ``CommandSpec``)."""
        return {"id": self.id, "action": self.action, "args": self.args}

    def to_json(self) -> dict[str, Any]:
        return {
            **self.wire(),
            "agent_id": self.agent_id,
            "state": self.state,
            "created": self.created,
            "actor": self.actor,
            "alert_id": self.alert_id,
            "result": self.result,
        }


_COLUMNS = "id, agent_id, action, args, state, created, actor, alert_id, result"


class ActionQueue:
    def __init__(self, registry: Registry, store: Store, *, redeliver_after: float = 60.0) -> None:
        self.registry = registry
        self.store = store
        self.redeliver_after = redeliver_after

    def request(
        self,
        agent_id: str,
        action: str,
        args: dict[str, Any] | None = None,
        *,
        actor: str,
        alert_id: str = "",
    ) -> Command:
        if action not in RESPONSE_ACTIONS:
            raise ConfigError(
                f"unknown response action {action!r}", remedy=f"one of {sorted(RESPONSE_ACTIONS)}"
            )
        record = self.registry.get(agent_id)
        if record is None or record.revoked is not None:
            raise NotFoundError(f"no active enrolled agent {agent_id!r}")
        now = time.time()
        command = Command(
            id=uuid.uuid4().hex,
            agent_id=agent_id,
            action=action,
            args=dict(args or {}),
            state="pending",
            created=now,
            actor=actor,
            alert_id=alert_id,
            result=None,
        )
        with self.registry.tx() as conn:
            conn.execute(
                "INSERT INTO commands VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    command.id,
                    agent_id,
                    action,
                    json.dumps(command.args),
                    "pending",
                    now,
                    now,
                    actor,
                    alert_id,
                    None,
                ),
            )
        self._audit(command, actor, {"state": "requested"})
        return command

    def fetch(self, agent_id: str) -> list[Command]:
        """Pending commands for this agent (and unanswered ones due again); marks them sent."""
        now = time.time()
        with self.registry.tx() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM commands WHERE agent_id=? AND (state='pending' OR "  # noqa: S608
                "(state='sent' AND updated < ?)) ORDER BY created",
                (agent_id, now - self.redeliver_after),
            ).fetchall()
            conn.executemany(
                "UPDATE commands SET state='sent', updated=? WHERE id=?",
                [(now, r[0]) for r in rows],
            )
        return [_command(r) for r in rows]

    def report(self, agent_id: str, command_id: str, status: str, detail: str) -> Command:
        if status not in COMMAND_RESULT_STATES:
            raise ConfigError(f"result status must be one of {sorted(COMMAND_RESULT_STATES)}")
        result = {"status": status, "detail": detail[:2000]}
        with self.registry.tx() as conn:
            changed = conn.execute(
                "UPDATE commands SET state=?, result=?, updated=? WHERE id=? AND agent_id=?",
                (status, json.dumps(result), time.time(), command_id, agent_id),
            ).rowcount
        if not changed:  # another agent's command id: not found for this identity
            raise NotFoundError(f"no command {command_id!r} for agent {agent_id}")
        command = self.get(command_id)
        self._audit(command, f"agent:{agent_id}", {"state": status, "detail": result["detail"]})
        return command

    def get(self, command_id: str) -> Command:
        rows = self.registry.read(f"SELECT {_COLUMNS} FROM commands WHERE id=?", (command_id,))  # noqa: S608
        if not rows:
            raise NotFoundError(f"no command {command_id!r}")
        return _command(rows[0])

    def list(self, agent_id: str | None = None) -> list[Command]:
        sql = f"SELECT {_COLUMNS} FROM commands"  # noqa: S608
        rows = (
            self.registry.read(sql + " WHERE agent_id=? ORDER BY created", (agent_id,))
            if agent_id
            else self.registry.read(sql + " ORDER BY created")
        )
        return [_command(r) for r in rows]

    def _audit(self, command: Command, actor: str, extra: dict[str, Any]) -> None:
        self.store.append_triage(
            TriageRecord(
                alert_id=command.alert_id,
                playbook_id=PLAYBOOK_ID,
                step_id=command.id,
                kind="action",
                actor=actor,
                at=datetime.now(UTC),
                detail={
                    "agent_id": command.agent_id,
                    "action": command.action,
                    "args": command.args,
                    **extra,
                },
            )
        )


def _command(row: tuple[Any, ...]) -> Command:
    return Command(
        id=row[0],
        agent_id=row[1],
        action=row[2],
        args=json.loads(row[3]),
        state=row[4],
        created=row[5],
        actor=row[6],
        alert_id=row[7],
        result=json.loads(row[8]) if row[8] else None,
    )
