"""The agent's identity: enrollment, the short-lived client certificate, renewal.

Files in ``<state_dir>/identity/``:
- ``agent.pem`` (0600): the private key *and* the client certificate in one file, replaced
  atomically (write to a temporary file, fsync, rename), so key and certificate always match;
- ``ca.pem``: the pinned collector CA (given by the operator at enrollment, never learned
  from the network);
- ``identity.json``: agent id, collector URL, certificate expiry.

The key pair is generated on the host (EC P-256) and never leaves it: the collector sees only
a CSR whose subject CN is the agent id. Each renewal generates a fresh key (key rotation).
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agents import __version__
from agents.config import load_or_create_agent_id, prepare_state_dir
from agents.errors import AuthError, ConfigError, TransportError
from agents.ownconns import OWN
from agents.tlsconfig import client_context

RENEW_FRACTION = 1 / 3  # renew when this fraction of the lifetime is left


@dataclass(frozen=True, slots=True)
class Identity:
    agent_id: str
    collector_url: str
    cert_file: Path  # key + certificate (PEM)
    ca_file: Path
    not_before: float
    not_after: float

    def renewal_due(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        return now >= self.not_after - (self.not_after - self.not_before) * RENEW_FRACTION

    def context(self) -> ssl.SSLContext:
        return client_context(self.ca_file, cert_file=self.cert_file)


def identity_dir(state_dir: Path) -> Path:
    return state_dir / "identity"


def load_identity(state_dir: Path) -> Identity | None:
    directory = identity_dir(state_dir)
    try:
        meta = json.loads((directory / "identity.json").read_text())
        return Identity(
            agent_id=str(meta["agent_id"]),
            collector_url=str(meta["collector_url"]),
            cert_file=directory / "agent.pem",
            ca_file=directory / "ca.pem",
            not_before=float(meta["not_before"]),
            not_after=float(meta["not_after"]),
        )
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"agent identity in {directory} is unreadable: {exc}",
            remedy="re-enroll from a fresh --state-dir",
        ) from exc


def _csr(agent_id: str) -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, agent_id)]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def _post(url: str, path: str, context: ssl.SSLContext, body: dict[str, Any]) -> dict[str, Any]:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigError(f"collector URL must be https://HOST:PORT, got {url!r}")
    conn = http.client.HTTPSConnection(
        parts.hostname, parts.port or 443, context=context, timeout=30
    )
    try:
        conn.request(
            "POST",
            parts.path.rstrip("/") + path,
            body=json.dumps(body).encode(),
            headers={
                "Content-Type": "application/json",
                "User-Agent": f"sekimori-agent/{__version__}",
            },
        )
        OWN.note(conn.sock)  # renewal runs inside the agent: never report it (ownconns.py)
        response = conn.getresponse()
        data = response.read()
    except ssl.SSLCertVerificationError as exc:
        raise TransportError(
            f"collector certificate not signed by the pinned CA: {exc}",
            remedy="pass --ca with the ca.pem from the collector's data directory",
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise TransportError(f"collector unreachable at {url}: {exc}") from exc
    finally:
        conn.close()
    try:
        answer: dict[str, Any] = json.loads(data)
    except ValueError:
        answer = {"error": data[:200].decode("utf-8", "replace")}
    if response.status in (401, 403):
        raise AuthError(f"collector refused {path}: {answer.get('error')}")
    if response.status != 200:
        raise TransportError(
            f"collector answered HTTP {response.status} to {path}: {answer.get('error')}"
        )
    return answer


def _save(
    state_dir: Path,
    url: str,
    key: ec.EllipticCurvePrivateKey,
    answer: dict[str, Any],
    ca_pem: bytes | None,
) -> Identity:
    directory = identity_dir(state_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert = x509.load_pem_x509_certificate(str(answer["certificate"]).encode())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ) + cert.public_bytes(serialization.Encoding.PEM)
    if ca_pem is not None:
        _atomic(directory / "ca.pem", ca_pem, 0o644)
    _atomic(directory / "agent.pem", pem, 0o600)
    meta = {
        "agent_id": answer["agent_id"],
        "collector_url": url,
        "not_before": cert.not_valid_before_utc.timestamp(),
        "not_after": cert.not_valid_after_utc.timestamp(),
        "zone": answer.get("zone"),
    }
    _atomic(directory / "identity.json", json.dumps(meta).encode(), 0o644)
    identity = load_identity(state_dir)
    assert identity is not None  # noqa: S101 - just written
    return identity


def _atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def enroll(
    url: str, token: str, *, state_dir: Path, ca_file: Path, name: str | None = None
) -> Identity:
    """Generate a key pair, send a CSR with the one-time ``token``, keep the certificate.

    ``ca_file`` is the collector CA the operator copied from the collector (pinned)."""
    prepare_state_dir(state_dir)
    if load_identity(state_dir) is not None:
        raise ConfigError(
            f"{state_dir} is already enrolled", remedy="use a fresh --state-dir to re-enroll"
        )
    agent_id = load_or_create_agent_id(state_dir)
    key, csr = _csr(agent_id)
    ca_pem = ca_file.read_bytes()
    answer = _post(
        url,
        "/v1/enroll",
        client_context(ca_file),
        {"token": token.strip(), "csr": csr, "name": name or os.uname().nodename},
    )
    if answer.get("agent_id") != agent_id:
        raise TransportError("collector issued a certificate for another agent id")
    return _save(state_dir, url, key, answer, ca_pem)


def renew(identity: Identity, state_dir: Path) -> Identity:
    """A new key and certificate over mutual TLS with the current one."""
    key, csr = _csr(identity.agent_id)
    answer = _post(identity.collector_url, "/v1/renew", identity.context(), {"csr": csr})
    if answer.get("agent_id") != identity.agent_id:
        raise TransportError("collector renewed a certificate for another agent id")
    return _save(state_dir, identity.collector_url, key, answer, None)
