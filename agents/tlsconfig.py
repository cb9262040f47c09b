"""TLS for the agent -> collector channel: verify the collector against a CA file, and
optionally present a client certificate (mutual TLS, issued at enrollment later)."""

from __future__ import annotations

import ssl
from pathlib import Path

from agents.errors import ConfigError


def client_context(
    ca_file: Path | None, *, cert_file: Path | None = None, key_file: Path | None = None
) -> ssl.SSLContext:
    """A verifying client context. ``ca_file`` None uses the system trust store."""
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(ca_file) if ca_file else None
        )
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load the collector CA {ca_file}: {exc}",
            remedy="pass --ca with the ca.pem from the collector's data directory",
        ) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if cert_file is not None:
        try:
            context.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"cannot load the client certificate {cert_file}: {exc}",
                remedy="check --client-cert/--client-key (PEM, key unencrypted)",
            ) from exc
    return context
