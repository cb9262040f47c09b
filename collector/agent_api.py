"""Agent-facing endpoints besides ingest: enrollment, renewal, the command channel, and the
one authentication rule every request follows.

Authentication: the TLS layer has already verified any client certificate against the
collector CA (wrong CA, expired or malformed certificates fail the handshake). Here, every
endpoint except ``/v1/enroll`` and ``/v1/health`` requires that a certificate was presented
(401 otherwise), re-checks its expiry (long-lived keep-alive connections), and looks the
identity (the subject CN) up in the registry: revoked -> 403, unknown -> 403. The agent id is
*only* ever taken from the certificate.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from agents.errors import AuthError, ConfigError, InputError, NotFoundError, StoreError
from collector.actions import ActionQueue
from collector.authority import Authority, Issued
from collector.registry import Registry

log = logging.getLogger("sekimori.collector")
MAX_SMALL_BODY = 64 * 1024


@dataclass(frozen=True, slots=True)
class AgentAuth:
    registry: Registry
    authority: Authority
    actions: ActionQueue


AUTH_KEY = web.AppKey("auth", AgentAuth)


def json_response(
    status: int, body: dict[str, Any], headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(body), content_type="application/json", headers=headers
    )


def peer_certificate(request: web.Request) -> dict[str, Any] | None:
    transport = request.transport
    ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    cert = ssl_object.getpeercert()
    return dict(cert) if cert else None


def authenticate(request: web.Request) -> str | web.Response:
    """The agent id from the verified client certificate, or the refusal to send."""
    cert = peer_certificate(request)
    if cert is None:
        return json_response(
            401,
            {"error": "client certificate required: enroll first (sekimori agent enroll)"},
        )
    subject = {k: v for rdn in cert.get("subject", ()) for k, v in rdn}
    agent_id = str(subject.get("commonName", ""))
    not_after = ssl.cert_time_to_seconds(str(cert.get("notAfter", "Jan  1 00:00:00 1970 GMT")))
    if not_after < time.time():
        return json_response(401, {"error": "client certificate expired: renew or re-enroll"})
    status = request.app[AUTH_KEY].registry.status(agent_id)
    if status != "active":
        log.warning("refused %s agent %s", status, agent_id)
        return json_response(403, {"error": f"agent {agent_id} is {status}"})
    return agent_id


async def _small_json(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise InputError(f"content type {request.content_type!r}: send JSON")
    body = await request.content.read(MAX_SMALL_BODY + 1)
    if len(body) > MAX_SMALL_BODY:
        raise InputError("request body too large")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"malformed JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError("request body must be a JSON object")
    return data


async def _fields(request: web.Request, *names: str) -> list[str]:
    """The named string fields of a small JSON body (``detail``/``name`` may be absent)."""
    data = await _small_json(request)
    values = [data.get(name, "" if name in ("detail", "name") else None) for name in names]
    if not all(isinstance(value, str) for value in values):
        raise InputError(f"body needs string fields {list(names)}")
    return [str(value) for value in values]


async def _run(request: web.Request, func: Any, *args: Any) -> web.Response:
    """Run a blocking registry/CA call; map domain errors to statuses."""
    loop = asyncio.get_running_loop()
    try:
        result = await loop.run_in_executor(None, func, *args)
    except AuthError as exc:
        return json_response(401 if request.path == "/v1/enroll" else 403, {"error": exc.message})
    except NotFoundError as exc:
        return json_response(404, {"error": exc.message})
    except (InputError, ConfigError) as exc:
        status = 409 if "already enrolled" in exc.message else 400
        return json_response(status, {"error": exc.message})
    except StoreError as exc:
        log.exception("registry failure")
        return json_response(503, {"error": exc.message}, {"Retry-After": "2"})
    if isinstance(result, Issued):
        return json_response(200, result.to_json())
    return json_response(200, result)


async def enroll(request: web.Request) -> web.Response:
    try:
        token, csr, name = await _fields(request, "token", "csr", "name")
    except InputError as exc:
        return json_response(400, {"error": exc.message})
    auth = request.app[AUTH_KEY]
    return await _run(request, auth.authority.enroll, token, csr, name)


async def renew(request: web.Request) -> web.Response:
    agent = authenticate(request)
    if isinstance(agent, web.Response):
        return agent
    try:
        (csr,) = await _fields(request, "csr")
    except InputError as exc:
        return json_response(400, {"error": exc.message})
    return await _run(request, request.app[AUTH_KEY].authority.renew, agent, csr)


async def fetch_commands(request: web.Request) -> web.Response:
    agent = authenticate(request)
    if isinstance(agent, web.Response):
        return agent
    actions = request.app[AUTH_KEY].actions

    def fetch() -> dict[str, Any]:
        return {"commands": [c.wire() for c in actions.fetch(agent)]}

    return await _run(request, fetch)


async def command_result(request: web.Request) -> web.Response:
    agent = authenticate(request)
    if isinstance(agent, web.Response):
        return agent
    try:
        status, detail = await _fields(request, "status", "detail")
    except InputError as exc:
        return json_response(400, {"error": exc.message})
    actions = request.app[AUTH_KEY].actions
    command_id = request.match_info["command_id"]

    def report() -> dict[str, Any]:
        return actions.report(agent, command_id, status, detail).to_json()

    return await _run(request, report)


def add_routes(app: web.Application, auth: AgentAuth) -> None:
    app[AUTH_KEY] = auth
    app.router.add_post("/v1/enroll", enroll)
    app.router.add_post("/v1/renew", renew)
    app.router.add_get("/v1/commands", fetch_commands)
    app.router.add_post("/v1/commands/{command_id}/result", command_result)
