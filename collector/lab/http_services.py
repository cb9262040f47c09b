"""The lab's web-facing services (stdlib only): the security cloud's forward proxy and the
"outside" web host.

- :func:`serve_proxy`: an HTTP forward proxy (``GET http://host/path`` and ``CONNECT
  host:port`` tunnels), as the prefecture's security cloud offers staff PCs.
- :func:`serve_web`: the outside host's web server. It serves a harmless script
  (``/install.sh`` prints a marker line), a page and package-like files (``/pool/*.deb``).
- :func:`serve_beacon`: a TLS-port responder for C2-beacon scenarios: reads a hello, answers
  a few bytes, closes. Nothing is encrypted; only the shape of the traffic matters.
- :func:`serve_catcher`: the reverse-shell listener: sends ``exit`` to whatever connects.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final
from urllib.parse import urlsplit

SCRIPT: Final = b"#!/bin/sh\necho sekimori-lab-payload\n"
PAGE: Final = b"<html><body><h1>lab web</h1></body></html>\n"
PACKAGE: Final = bytes(range(256)) * 256  # 64 KiB of "package"
TUNNEL_IDLE: Final = 10.0


class WebHandler(BaseHTTPRequestHandler):
    server_version = "lab-web/1"

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/install.sh":
            self._send(200, SCRIPT, "text/x-sh")
        elif path in ("/", "/index.html"):
            self._send(200, PAGE, "text/html")
        elif path.startswith("/pool/") and path.endswith(".deb"):
            self._send(200, PACKAGE, "application/vnd.debian.binary-package")
        else:
            self._send(404, b"not found\n", "text/plain")

    def _send(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: ARG002
        return


class ProxyHandler(BaseHTTPRequestHandler):
    server_version = "lab-proxy/1"

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            self.send_error(400, "absolute http:// URI expected")
            return
        upstream = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=10)
        try:
            upstream.request("GET", url.path or "/", headers={"Host": url.netloc})
            response = upstream.getresponse()
            body = response.read()
        except OSError as exc:
            self.send_error(502, f"upstream: {exc}")
            return
        finally:
            upstream.close()
        self.send_response(response.status)
        self.send_header("Content-Type", response.getheader("Content-Type", "text/plain"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_CONNECT(self) -> None:
        host, _, port = self.path.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except (OSError, ValueError) as exc:
            self.send_error(502, f"upstream: {exc}")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        with upstream:
            _pump(self.connection, upstream)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: ARG002
        return


def _pump(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until either side closes or the tunnel idles."""
    while True:
        readable, _, _ = select.select([a, b], [], [], TUNNEL_IDLE)
        if not readable:
            return
        for sock in readable:
            data = sock.recv(65536)
            if not data:
                return
            (b if sock is a else a).sendall(data)


def _http(
    bind: str, port: int, handler: type[BaseHTTPRequestHandler], stop: threading.Event
) -> None:
    server = ThreadingHTTPServer((bind, port), handler)
    server.daemon_threads = True

    def stopper() -> None:
        stop.wait()
        server.shutdown()

    threading.Thread(target=stopper, daemon=True).start()
    with server:
        server.serve_forever(poll_interval=0.5)


def serve_proxy(bind: str, port: int, stop: threading.Event) -> None:
    _http(bind, port, ProxyHandler, stop)


def serve_web(bind: str, port: int, stop: threading.Event) -> None:
    _http(bind, port, WebHandler, stop)


def _accept_loop(bind: str, port: int, stop: threading.Event, talk: bytes, hold: float) -> None:
    with socket.create_server((bind, port), backlog=64) as server:
        server.settimeout(0.5)
        while not stop.is_set():
            try:
                conn, _peer = server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=_converse, args=(conn, talk, hold), daemon=True).start()


def _converse(conn: socket.socket, talk: bytes, hold: float) -> None:
    with conn:
        conn.settimeout(hold)
        with contextlib.suppress(TimeoutError, OSError):
            conn.recv(4096)  # the client's hello (or the shell's prompt)
        try:
            conn.sendall(talk)
            conn.settimeout(hold)
            while conn.recv(4096):
                pass
        except (TimeoutError, OSError):
            return


def serve_beacon(bind: str, port: int, stop: threading.Event) -> None:
    _accept_loop(bind, port, stop, b"\x16\x03\x03\x00\x20" + b"\x00" * 32, hold=2.0)


def serve_catcher(bind: str, port: int, stop: threading.Event) -> None:
    _accept_loop(bind, port, stop, b"id\nexit\n", hold=3.0)
