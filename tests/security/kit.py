"""Helpers for transport tests: a collector in a thread, enrolled clients, raw HTTPS calls."""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.identity import Identity, enroll
from collector.service import CollectorConfig, CollectorThread, build_collector
from tests.support import free_port


def start_collector(data_dir: Path, **settings: Any) -> CollectorThread:
    config = CollectorConfig(data_dir=data_dir, port=free_port(), **settings)
    thread = CollectorThread(build_collector(config))
    thread.start()
    return thread


def enroll_agent(thread: CollectorThread, state_dir: Path, zone: str | None = None) -> Identity:
    collector = thread.collector
    token = collector.registry.create_token(ttl=60, uses=1, zone=zone)
    return enroll(collector.url, token, state_dir=state_dir, ca_file=collector.tls.ca_cert)


@dataclass
class Client:
    """One HTTPS connection per call; ``cert`` None means no client certificate."""

    port: int
    ca: Path
    cert: Path | None = None

    def context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca))
        if self.cert is not None:
            context.load_cert_chain(str(self.cert))
        return context

    def call(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        conn = http.client.HTTPSConnection(
            "127.0.0.1", self.port, context=self.context(), timeout=10
        )
        try:
            conn.request(
                method,
                path,
                body=data,
                headers={"Content-Type": "application/json", **(headers or {})},
            )
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        try:
            payload = json.loads(raw or b"{}")
        except ValueError:
            payload = {"raw": raw.decode(errors="replace")}
        return response.status, payload


def client_for(thread: CollectorThread, identity: Identity | None) -> Client:
    collector = thread.collector
    return Client(
        collector.config.port, collector.tls.ca_cert, identity.cert_file if identity else None
    )
