"""Fixtures for agent tests (the helpers live in agent_testkit.py)."""

from __future__ import annotations

import json
import ssl
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from agents.events import EventBuilder
from tests.agents.agent_testkit import FakeCollector, FakeProc, Pki, make_builder, make_pki


@pytest.fixture
def fake_proc(tmp_path: Path) -> FakeProc:
    return FakeProc(tmp_path / "proc")


@pytest.fixture
def builder() -> EventBuilder:
    return make_builder()


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def collector(pki: Pki) -> Iterator[FakeCollector]:
    state = FakeCollector(url="")
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            envelope = json.loads(body)
            with lock:
                state.requests.append(envelope)
                state.headers.append(dict(self.headers))
                state.times.append(time.monotonic())
                status, extra, reply = state.script.pop(0) if state.script else (200, {}, None)
            if reply is None and status == 200:
                seqs = [e["sekimori"]["seq"] for e in envelope["events"]]
                reply = json.dumps(
                    {"accepted": len(seqs), "duplicates": 0, "rejected": [], "acked_seq": max(seqs)}
                ).encode()
            reply = reply or b'{"error": "scripted"}'
            self.send_response(status)
            for key, value in extra.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.cert_pem, pki.key_pem)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    state.url = f"https://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
