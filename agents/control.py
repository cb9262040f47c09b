"""The agent's control loop: certificate renewal and the command channel.

Every ``interval`` seconds: renew the client certificate when a third of its lifetime is left
(the shipper switches to the new one for its next connection), then fetch pending commands,
run each through the local policy (:mod:`agents.response`) and report the result. Command ids
already run are remembered in ``<state_dir>/commands.done`` (appended, fsynced), so a
redelivered command is reported again but never run twice.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import ssl
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from agents.errors import SekimoriError
from agents.identity import Identity, renew
from agents.ownconns import OWN
from agents.response import Outcome, ResponseExecutor

log = logging.getLogger(__name__)


class Control:
    def __init__(
        self,
        identity: Identity,
        state_dir: Path,
        executor: ResponseExecutor,
        *,
        on_new_context: Callable[[ssl.SSLContext], None],
    ) -> None:
        self.identity = identity
        self.state_dir = state_dir
        self.executor = executor
        self.on_new_context = on_new_context
        self.context = identity.context()
        self._done_path = state_dir / "commands.done"
        self.done: dict[str, Outcome] = {}
        self.renewals = 0
        self._load_done()

    def _load_done(self) -> None:
        try:
            lines = self._done_path.read_text().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                entry = json.loads(line)
                self.done[str(entry["id"])] = Outcome(str(entry["status"]), str(entry["detail"]))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash

    def _remember(self, command_id: str, outcome: Outcome) -> None:
        self.done[command_id] = outcome
        line = json.dumps({"id": command_id, "status": outcome.status, "detail": outcome.detail})
        fd = os.open(self._done_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        parts = urlsplit(self.identity.collector_url)
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port or 443, context=self.context, timeout=30
        )
        try:
            data = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, parts.path.rstrip("/") + path, body=data, headers=headers)
            OWN.note(conn.sock)  # never report our own connection (agents/ownconns.py)
            response = conn.getresponse()
            payload = response.read()
        finally:
            conn.close()
        if response.status != 200:
            raise OSError(f"HTTP {response.status} on {path}: {payload[:200]!r}")
        return json.loads(payload)

    def maybe_renew(self) -> bool:
        if not self.identity.renewal_due():
            return False
        self.identity = renew(self.identity, self.state_dir)
        self.context = self.identity.context()
        self.on_new_context(self.context)
        self.renewals += 1
        log.info("client certificate renewed; valid until %.0f", self.identity.not_after)
        return True

    def poll_commands(self) -> int:
        answer = self._request("GET", "/v1/commands")
        handled = 0
        for command in answer.get("commands", []):
            command_id = str(command["id"])
            outcome = self.done.get(command_id)
            if outcome is None:
                log.warning("command %s: %s %s", command_id, command["action"], command["args"])
                outcome = self.executor.execute(str(command["action"]), dict(command["args"]))
                self._remember(command_id, outcome)
            self._request(
                "POST",
                f"/v1/commands/{command_id}/result",
                {"status": outcome.status, "detail": outcome.detail},
            )
            handled += 1
        return handled

    def step(self) -> None:
        try:
            self.maybe_renew()
        except (SekimoriError, OSError) as exc:
            log.warning("certificate renewal failed (will retry): %s", exc)
        try:
            self.poll_commands()
        except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
            log.warning("command poll failed (will retry): %s", exc)

    def run(self, stop: threading.Event, interval: float) -> None:
        while not stop.is_set():
            self.step()
            stop.wait(interval)
