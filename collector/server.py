"""HTTPS API (aiohttp), mutual TLS.

``POST /v1/events``  a batch envelope (agents/schema.py); answers an ``IngestResponse``.
``POST /v1/enroll``, ``/v1/renew``, ``GET /v1/commands``, ``POST /v1/commands/<id>/result``:
see :mod:`collector.agent_api`.  ``GET /v1/health``  liveness and counters.

Status codes on ingest: 200 batch handled (some events may be rejected, each with its reason;
events already stored count as duplicates: a replay is a no-op); 400 body refused whole
(reason in ``error``); 401 no or expired client certificate; 403 revoked or unknown agent, or
a batch claiming another identity than the certificate's; 413 body over the limit; 415 not
JSON; 503 the store failed: nothing was half-written, retry later. Blocking work (validation,
SQLite, matching) runs in a worker thread so the event loop keeps accepting connections.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import threading
from datetime import UTC, datetime

from aiohttp import web

from agents.errors import AuthError, InputError, StoreError
from agents.schema import HEADER_BACKLOG, HEADER_SENT_AT, IngestResponse, parse_iso
from collector.agent_api import AUTH_KEY, AgentAuth, add_routes, authenticate, json_response
from collector.models import DeadLetter
from collector.pipeline import IngestPipeline
from collector.validate import TooLargeError

log = logging.getLogger("sekimori.collector")

PIPELINE_KEY = web.AppKey("pipeline", IngestPipeline)
_json = json_response


def _backlog(value: str | None) -> int | None:
    return int(value) if value is not None and value.isdigit() and len(value) < 19 else None


def _skew(value: str | None, now: datetime) -> float | None:
    if not value or len(value) > 64:
        return None
    try:
        return (now - parse_iso(value)).total_seconds()
    except ValueError:
        return None


async def ingest(request: web.Request) -> web.Response:
    agent = authenticate(request)
    if isinstance(agent, web.Response):
        return agent
    if request.content_type != "application/json":
        return _json(415, {"error": f"content type {request.content_type!r}: send JSON"})
    pipeline = request.app[PIPELINE_KEY]
    auth = request.app[AUTH_KEY]
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        limit = pipeline.limits.max_body_bytes
        return _json(413, {"error": f"body exceeds the limit of {limit} bytes"})
    backlog = _backlog(request.headers.get(HEADER_BACKLOG))
    skew = _skew(request.headers.get(HEADER_SENT_AT), datetime.now(UTC))

    def handle() -> IngestResponse:
        response = pipeline.ingest(body, authenticated_agent=agent)
        auth.registry.observe(
            agent,
            max_seq=response["acked_seq"],
            accepted=response["accepted"],
            backlog=backlog,
            skew=skew,
        )
        return response

    loop = asyncio.get_running_loop()
    try:
        response = await loop.run_in_executor(None, handle)
    except AuthError as exc:
        log.warning("refused batch from %s: %s", agent, exc.message)
        await loop.run_in_executor(None, _dead_letter_body, pipeline, body, exc.message, agent)
        return _json(403, {"error": exc.message})
    except InputError as exc:
        await loop.run_in_executor(None, _dead_letter_body, pipeline, body, exc.message, agent)
        status = 413 if isinstance(exc, TooLargeError) else 400
        return _json(status, {"error": exc.message})
    except StoreError as exc:
        log.exception("store failure, asking the agent to retry")
        return _json(503, {"error": f"store unavailable: {exc.message}"}, {"Retry-After": "2"})
    return _json(200, dict(response))


def _dead_letter_body(pipeline: IngestPipeline, body: bytes, reason: str, agent: str = "?") -> None:
    """Keep a refused body for forensics (it is already bounded by the body limit)."""
    try:
        pipeline.store.write_dead_letters(
            [
                DeadLetter(
                    agent_id=agent,
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


def make_app(pipeline: IngestPipeline, auth: AgentAuth) -> web.Application:
    app = web.Application(client_max_size=pipeline.limits.max_body_bytes)
    app[PIPELINE_KEY] = pipeline
    add_routes(app, auth)
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
