"""Ship spooled events to the collector: ``POST https://HOST:PORT/v1/events`` (BatchEnvelope).

Delivery is at-least-once: records leave the spool only when the collector answers with an
IngestResponse whose ``acked_seq`` covers them; resends are no-ops thanks to deterministic ids.

Status handling:
- 2xx: ack the spool up to ``acked_seq`` (never beyond the batch); rejected events were
  dead-lettered by the collector and are logged.
- connection/TLS errors, 408, 429, 5xx: retry with exponential backoff and jitter;
  ``Retry-After`` (seconds or HTTP date) wins when present.
- 413: halve the batch size and retry.
- any other 4xx: our bug or a config problem; keep every record, log loudly, back off at
  the maximum delay. Nothing is ever dropped here.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import logging
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from agents import __version__
from agents.errors import ConfigError
from agents.ownconns import OWN
from agents.schema import BATCH_SCHEMA, HEADER_BACKLOG, HEADER_SENT_AT, utc_now_iso
from agents.spool import Batch, Spool
from agents.tlsconfig import client_context

log = logging.getLogger(__name__)

RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 3600.0


WAKE_LINGER = 0.05  # seconds to gather a burst after a wake-up


@dataclass(frozen=True, kw_only=True)
class ShipperConfig:
    url: str  # https://host:port[/prefix]
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    token: str | None = None
    max_events: int = 1000
    max_bytes: int = 1024 * 1024
    timeout: float = 30.0
    backoff_base: float = 0.5
    backoff_max: float = 60.0
    idle_interval: float = 1.0


@dataclass(frozen=True, kw_only=True)
class ShipResult:
    outcome: Literal["idle", "sent", "retry", "refused"]
    sent: int = 0
    acked_seq: int | None = None
    status: int | None = None
    retry_after: float | None = None
    detail: str = ""


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    delay = moment.timestamp() - (time.time() if now is None else now)
    return min(max(delay, 0.0), MAX_RETRY_AFTER)


class Shipper:
    def __init__(
        self,
        spool: Spool,
        config: ShipperConfig,
        *,
        agent_id: str,
        agent_name: str,
        rng: random.Random | None = None,
    ) -> None:
        parts = urlsplit(config.url)
        if parts.scheme != "https" or not parts.hostname:
            raise ConfigError(
                f"collector URL must be https://HOST:PORT, got {config.url!r}",
                remedy="pass --collector https://collector.example:8443",
            )
        self.host = parts.hostname
        self.port = parts.port or 443
        self.path = parts.path.rstrip("/") + "/v1/events"
        self.spool = spool
        self.config = config
        self.context: ssl.SSLContext = client_context(
            config.ca_file, cert_file=config.client_cert, key_file=config.client_key
        )
        self._agent = json.dumps({"id": agent_id, "name": agent_name}).encode()
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not crypto
        self._conn: http.client.HTTPSConnection | None = None
        self._new_context: ssl.SSLContext | None = None
        self.max_events = config.max_events
        self.failures = 0
        self.shipped = 0

    def set_context(self, context: ssl.SSLContext) -> None:
        """Use ``context`` (a renewed client certificate) from the next connection on. Safe to
        call from another thread: the switch happens in the shipping thread."""
        self._new_context = context

    # -- one attempt ---------------------------------------------------------------------------
    def body(self, batch: Batch) -> bytes:
        head = b'{"schema":' + json.dumps(BATCH_SCHEMA).encode() + b',"agent":' + self._agent
        return head + b',"events":[' + b",".join(batch.payloads) + b"]}"

    def ship_once(self) -> ShipResult:
        batch = self.spool.read_batch(self.max_events, self.config.max_bytes)
        if batch is None:
            return ShipResult(outcome="idle")
        try:
            status, headers, data = self._post(self.body(batch))
        except ssl.SSLCertVerificationError as exc:
            self._close()
            log.error(  # noqa: TRY400 - the message says it all
                "collector certificate not trusted: %s (is --ca the collector's ca.pem?)", exc
            )
            return ShipResult(outcome="retry", detail=str(exc))
        except (OSError, http.client.HTTPException) as exc:
            self._close()
            log.warning("collector unreachable at %s:%d: %s", self.host, self.port, exc)
            return ShipResult(outcome="retry", detail=str(exc))
        if 200 <= status < 300:
            return self._accepted(batch, status, data)
        retry_after = parse_retry_after(headers.get("Retry-After"))
        snippet = data[:300].decode("utf-8", "replace")
        if status == 413 and self.max_events > 1:
            self.max_events = max(1, min(self.max_events, len(batch.payloads)) // 2)
            log.warning("collector says batch too large; now at most %d events", self.max_events)
            return ShipResult(outcome="retry", status=status, detail=snippet)
        if status in RETRYABLE or status >= 500:
            log.warning("collector busy/failing (HTTP %d), will retry", status)
            return ShipResult(
                outcome="retry", status=status, retry_after=retry_after, detail=snippet
            )
        log.error(
            "collector REFUSED batch seq %d..%d (HTTP %d): %s -- records kept in the spool; "
            "this is a bug or a configuration error (token, agent identity)",
            batch.first_seq,
            batch.last_seq,
            status,
            snippet,
        )
        return ShipResult(outcome="refused", status=status, retry_after=retry_after, detail=snippet)

    def _accepted(self, batch: Batch, status: int, data: bytes) -> ShipResult:
        try:
            answer = json.loads(data)
            acked = int(answer["acked_seq"])
        except (ValueError, KeyError, TypeError):
            log.error(  # noqa: TRY400
                "collector answered HTTP %d without a valid acked_seq: %r", status, data[:200]
            )
            return ShipResult(outcome="retry", status=status, detail="no acked_seq")
        for rejected in answer.get("rejected") or []:
            log.error(
                "collector rejected event %s (batch index %s): %s",
                rejected.get("event_id"),
                rejected.get("index"),
                rejected.get("reason"),
            )
        acked = min(acked, batch.last_seq)
        self.spool.ack(acked)
        if acked < batch.first_seq:
            return ShipResult(
                outcome="retry",
                status=status,
                acked_seq=acked,
                detail="collector acknowledged nothing",
            )
        self.shipped += acked - batch.first_seq + 1
        return ShipResult(outcome="sent", sent=len(batch.payloads), acked_seq=acked, status=status)

    def _post(self, body: bytes) -> tuple[int, http.client.HTTPMessage, bytes]:
        if self._new_context is not None:
            self.context, self._new_context = self._new_context, None
            self._close()
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(
                self.host, self.port, context=self.context, timeout=self.config.timeout
            )
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"sekimori-agent/{__version__}",
            HEADER_BACKLOG: str(self.spool.pending),
            HEADER_SENT_AT: utc_now_iso(),
        }
        if self.config.token:
            headers["Authorization"] = f"Bearer {self.config.token}"
        self._conn.request("POST", self.path, body=body, headers=headers)
        OWN.note(self._conn.sock)  # never report our own connection (agents/ownconns.py)
        response = self._conn.getresponse()
        data = response.read()
        if response.will_close:
            self._close()
        return response.status, response.headers, data

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the loop ------------------------------------------------------------------------------
    def next_delay(self, result: ShipResult) -> float:
        """Exponential backoff with jitter (50-100 % of the step); Retry-After wins."""
        if result.outcome in ("sent", "idle"):
            self.failures = 0
            return 0.0 if result.outcome == "sent" else self.config.idle_interval
        self.failures += 1
        if result.retry_after is not None:
            return result.retry_after
        if result.outcome == "refused":
            step = self.config.backoff_max
        else:
            step = min(self.config.backoff_max, self.config.backoff_base * 2 ** (self.failures - 1))
        return step * self._rng.uniform(0.5, 1.0)

    def run(
        self,
        stop: threading.Event,
        *,
        wait: Callable[[float], bool] | None = None,
        wake: threading.Event | None = None,
    ) -> None:
        """Ship until ``stop`` is set. When idle, ``wake`` (set by the spool writer on new
        events) ends the idle pause early, so a fresh event ships within ~``WAKE_LINGER``
        instead of up to ``idle_interval`` later; backoff pauses after failures are never cut
        short."""
        pause = wait or stop.wait
        while not stop.is_set():
            result = self.ship_once()
            delay = self.next_delay(result)
            if delay <= 0:
                continue
            if wake is not None and result.outcome == "idle":
                if wake.wait(delay):
                    pause(WAKE_LINGER)  # let a burst of events gather into one batch
                wake.clear()
            else:
                pause(delay)

    def drain(self, timeout: float) -> bool:
        """Ship what is pending for at most ``timeout`` s (used at shutdown). True if empty."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.ship_once()
            if result.outcome == "idle":
                return True
            if result.outcome != "sent":
                return False
        return self.spool.pending == 0

    def close(self) -> None:
        self._close()
