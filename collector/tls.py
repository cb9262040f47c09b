"""The collector's own certificate authority and server certificate.

On first start (or ``sekimori collector init``) the collector creates, in its data directory:
``ca.pem`` (public; agents pin it), ``ca.key`` (0600), ``server.pem`` and ``server.key`` (0600)
with subject alternative names for localhost, 127.0.0.1, ::1, the host name and any extra names
given. Existing files are reused, so agents keep trusting the same CA across restarts.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from agents.errors import ConfigError

CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=397)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _make_ca(files: TlsFiles) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sekimori collector CA")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(files.ca_key, _key_pem(key))
    files.ca_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_server(files: TlsFiles, names: list[str]) -> None:
    ca_key = serialization.load_pem_private_key(files.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise ConfigError("collector CA key is not an EC key", source=str(files.ca_key))
    key = ec.generate_private_key(ec.SECP256R1())
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sekimori collector")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(files.server_key, _key_pem(key))
    files.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def ensure_tls(
    data_dir: Path,
    extra_names: tuple[str, ...] = (),
    *,
    given_ca: tuple[Path, Path] | None = None,
) -> TlsFiles:
    """Create the CA and server certificate on first start; reuse them afterwards.

    ``given_ca`` (cert PEM, key PEM) installs an existing CA instead of generating one (only
    when the data directory has none yet)."""
    files = TlsFiles(
        ca_cert=data_dir / "ca.pem",
        ca_key=data_dir / "ca.key",
        server_cert=data_dir / "server.pem",
        server_key=data_dir / "server.key",
    )
    data_dir.mkdir(parents=True, exist_ok=True)
    if not files.ca_cert.exists() or not files.ca_key.exists():
        if given_ca is not None:
            files.ca_cert.write_bytes(given_ca[0].read_bytes())
            _write_private(files.ca_key, given_ca[1].read_bytes())
        else:
            _make_ca(files)
    if not files.server_cert.exists() or not files.server_key.exists():
        names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), *extra_names]
        _make_server(files, list(dict.fromkeys(names)))
    return files


def server_context(files: TlsFiles) -> ssl.SSLContext:
    """Server TLS that asks every client for a certificate from the collector CA.

    ``CERT_OPTIONAL``: a client without a certificate completes the handshake (it can only
    enroll; every other endpoint answers 401), while a certificate from another CA, expired or
    otherwise invalid fails the handshake itself."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_OPTIONAL
    context.load_verify_locations(cafile=str(files.ca_cert))
    try:
        context.load_cert_chain(files.server_cert, files.server_key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the collector certificate: {exc}", source=str(files.server_cert)
        ) from exc
    return context
