"""Enrollment and renewal: the collector CA signs agents' CSRs into short-lived client certs.

- Enrollment (``POST /v1/enroll``, TLS without a client cert): a single-use, expiring token,
  a CSR whose subject CN is the agent's id (32 hex, generated on the host together with the
  key pair; the key never leaves the host). The token is spent and the id reserved in one
  registry transaction, so a token cannot enroll twice and an id cannot be taken over.
- Renewal (``POST /v1/renew``, mutual TLS): a fresh CSR from an agent whose current
  certificate is valid and not revoked; the identity is the one in that certificate.
- Certificates: CN = agent id, SAN ``urn:sekimori:agent:<id>``, EKU clientAuth only, valid
  ``client_validity`` (default 24 h). The agent renews when a third of the lifetime is left.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agents.errors import AuthError, ConfigError, InputError
from collector.registry import AGENT_ID, Registry
from collector.tls import TlsFiles

CLIENT_VALIDITY = dt.timedelta(hours=24)
AGENT_URI = "urn:sekimori:agent:"
MAX_CSR_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class Issued:
    agent_id: str
    certificate: str  # PEM
    ca: str  # PEM
    not_after: float
    zone: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "agent_id": self.agent_id,
            "certificate": self.certificate,
            "ca": self.ca,
            "not_after": self.not_after,
            "zone": self.zone,
        }


class Authority:
    def __init__(
        self, files: TlsFiles, registry: Registry, client_validity: dt.timedelta = CLIENT_VALIDITY
    ) -> None:
        key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ConfigError("collector CA key must be EC or RSA", source=str(files.ca_key))
        self._key = key
        self.ca_pem = files.ca_cert.read_text()
        self.ca_cert = x509.load_pem_x509_certificate(self.ca_pem.encode())
        self.registry = registry
        self.client_validity = client_validity

    def enroll(self, token: str, csr_pem: str, name: str) -> Issued:
        csr = _load_csr(csr_pem)
        agent_id = _csr_agent_id(csr)
        zone = self.registry.redeem_token(token, agent_id, name[:200] or agent_id)
        return self._issue(csr, agent_id, zone)

    def renew(self, agent_id: str, csr_pem: str) -> Issued:
        csr = _load_csr(csr_pem)
        if _csr_agent_id(csr) != agent_id:
            raise AuthError("renewal CSR names another agent than the client certificate")
        record = self.registry.get(agent_id)
        if record is None or record.revoked is not None:
            raise AuthError(f"agent {agent_id} is revoked or unknown")
        return self._issue(csr, agent_id, record.zone)

    def _issue(
        self, csr: x509.CertificateSigningRequest, agent_id: str, zone: str | None
    ) -> Issued:
        now = dt.datetime.now(dt.UTC)
        not_after = now + self.client_validity
        attributes = [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "sekimori agent"),
            x509.NameAttribute(NameOID.COMMON_NAME, agent_id),
        ]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.ca_cert.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(not_after)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(AGENT_URI + agent_id)]),
                critical=False,
            )
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.registry.record_cert(agent_id, f"{cert.serial_number:X}", not_after.timestamp())
        return Issued(
            agent_id=agent_id,
            certificate=cert.public_bytes(serialization.Encoding.PEM).decode(),
            ca=self.ca_pem,
            not_after=not_after.timestamp(),
            zone=zone,
        )


def _load_csr(csr_pem: str) -> x509.CertificateSigningRequest:
    if not isinstance(csr_pem, str) or len(csr_pem) > MAX_CSR_BYTES:
        raise InputError("'csr' must be a PEM certificate signing request")
    try:
        csr = x509.load_pem_x509_csr(csr_pem.encode("utf-8"))
    except ValueError as exc:
        raise InputError(f"'csr' is not a PEM certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise InputError("CSR signature does not verify (the key does not match)")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < 2048:
        raise InputError("CSR RSA key shorter than 2048 bits")
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise InputError("CSR key must be EC or RSA")
    return csr


def _csr_agent_id(csr: x509.CertificateSigningRequest) -> str:
    names = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    agent_id = str(names[0].value) if names else ""
    if not AGENT_ID.match(agent_id):
        raise InputError("CSR subject CN must be the agent id (32 lowercase hex characters)")
    return agent_id
