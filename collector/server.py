"""HTTPS ingest API (aiohttp).

``POST /v1/events``  a batch envelope (agents/schema.py); answers an ``IngestResponse``.
``GET  /v1/health``  liveness and counters.

Status codes: 200 batch handled (some events may be rejected, each with its reason);
400 body refused whole (reason in ``error``); 401 missing/wrong ingest token; 413 body over the
limit; 415 not JSON; 503 the store failed: nothing was half-written, retry later.
Blocking work (validation, SQLite, matching) runs in a worker thread so the event loop keeps
accepting connections.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import ssl
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from agents.errors import InputError, StoreError
from collector.models import DeadLetter
from collector.pipeline import IngestPipeline
from collector.validate import TooLargeError

log = logging.getLogger("sekimori.collector")

PIPELINE_KEY = web.AppKey("pipeline", IngestPipeline)
TOKEN_KEY = web.AppKey("token", str)


def ensure_token(path: Path) -> str:
    """The shared ingest token (created 0600 on first start) until per-agent mTLS lands."""
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    token = secrets.token_urlsafe(32)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600)
    path.write_text(token + "\n", encoding="utf-8")
    return token


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        body=orjson.dumps(body),
        content_type="application/json",
        headers=headers,
    )


def _authorised(request: web.Request) -> bool:
    expected = request.app[TOKEN_KEY]
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), expected)


async def ingest(request: web.Request) -> web.Response:
    if not _authorised(request):
        return _json(401, {"error": "missing or wrong ingest token"})
    if request.content_type != "application/json":
        return _json(415, {"error": f"content type {request.content_type!r}: send JSON"})
    pipeline = request.app[PIPELINE_KEY]
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = pipeline.limits.max_body_bytes
        return _json(413, {"error": f"body exceeds the limit of {limit} bytes"})
    loop = asyncio.get_running_loop()
    try:
        response = await loop.run_in_executor(None, pipeline.ingest, body)
    except InputError as exc:
        await loop.run_in_executor(None, _dead_letter_body, pipeline, body, exc.message)
        status = 413 if isinstance(exc, TooLargeError) else 400
        return _json(status, {"error": exc.message})
    except StoreError as exc:
        log.exception("store failure, asking the agent to retry")
        return _json(503, {"error": f"store unavailable: {exc.message}"}, {"Retry-After": "2"})
    return _json(200, dict(response))


def _dead_letter_body(pipeline: IngestPipeline, body: bytes, reason: str) -> None:
    """Keep a refused body for forensics (it is already bounded by the body limit)."""
    try:
        pipeline.store.write_dead_letters(
            [
                DeadLetter(
                    agent_id="?",
                    event_id=None,
                    reason=f"batch refused: {reason}",
                    raw=body.decode("utf-8", errors="replace"),
                    received_at=datetime.now(UTC),
                )
            ]
        )
    except StoreError:
        log.exception("could not dead-letter a refused body")


async def health(request: web.Request) -> web.Response:
    stats = request.app[PIPELINE_KEY].stats
    return _json(
        200,
        {
            "status": "ok",
            "batches": stats.batches,
            "accepted": stats.accepted,
            "duplicates": stats.duplicates,
            "rejected": stats.rejected,
            "alerts_raised": stats.alerts_raised,
        },
    )


def make_app(pipeline: IngestPipeline, token: str) -> web.Application:
    app = web.Application(client_max_size=pipeline.limits.max_body_bytes)
    app[PIPELINE_KEY] = pipeline
    app[TOKEN_KEY] = token
    app.router.add_post("/v1/events", ingest)
    app.router.add_get("/v1/health", health)
    return app


async def serve(
    app: web.Application,
    host: str,
    port: int,
    context: ssl.SSLContext,
    stop: asyncio.Event,
    ready: threading.Event | None = None,
) -> None:
    """Serve until ``stop`` is set; then close listeners and finish in-flight requests."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=context, reuse_address=True)
    await site.start()
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
