"""The few HTTP calls the search-engine store makes, behind one small interface.

``opensearch.py`` and ``elasticsearch.py`` adapt their official clients to ``Transport``; the
store itself (``search.py``) never imports either client. Every failure surfaces as
``ClusterError`` with the HTTP status (0 when the cluster could not be reached) and whether
retrying can help.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Protocol

import orjson

# Statuses worth retrying: unreachable (0), timeout, too many requests, overloaded/unavailable.
TRANSIENT_STATUSES: Final[frozenset[int]] = frozenset({0, 408, 429, 500, 502, 503, 504})


class ClusterError(Exception):
    """A cluster request failed; ``status`` is 0 when no HTTP answer arrived."""

    def __init__(self, status: int, reason: str, *, ambiguous: bool = False) -> None:
        super().__init__(f"{status or 'unreachable'}: {reason}")
        self.status = status
        self.reason = reason
        # The request may have been applied (the connection dropped after sending it).
        self.ambiguous = ambiguous

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT_STATUSES


class Transport(Protocol):
    """JSON over HTTP to one cluster. Raises ``ClusterError``."""

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any: ...

    def bulk(self, ndjson: bytes, *, params: Mapping[str, str] | None = None) -> Any: ...

    def info(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class ClientTransport:
    """What both client adapters share: JSON and NDJSON requests over ``_perform`` (the one
    client-specific call, which maps the client's errors to ``ClusterError``)."""

    json_headers: ClassVar[Mapping[str, str] | None] = None
    ndjson_headers: ClassVar[Mapping[str, str]] = {"content-type": "application/x-ndjson"}
    client: Any

    def _perform(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> Any:
        raise NotImplementedError

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
    ) -> Any:
        payload = None if body is None else orjson.dumps(body)
        return self._perform(method, path, params, payload, self.json_headers)

    def bulk(self, ndjson: bytes, *, params: Mapping[str, str] | None = None) -> Any:
        return self._perform("POST", "/_bulk", params, ndjson, self.ndjson_headers)

    def info(self) -> dict[str, Any]:
        return dict(self.request("GET", "/"))

    def close(self) -> None:
        self.client.close()


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOptions:
    """How to reach a cluster: one or more URLs and TLS / authentication settings.

    ``api_key`` is the base64 ``id:key`` form both engines accept; ``basic_auth`` is
    ``(user, password)``. ``ca_certs`` points at a PEM bundle for a private CA;
    ``verify_certs=False`` is refused unless ``insecure=True`` is also given (tests only).
    """

    hosts: tuple[str, ...]
    ca_certs: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    verify_certs: bool = True
    insecure: bool = False
    api_key: str | None = None
    basic_auth: tuple[str, str] | None = None
    request_timeout: float = 30.0


def item_reason(result: Mapping[str, Any]) -> str:
    """A readable reason from one bulk item's ``error`` object (type: reason [caused by])."""
    error = result.get("error")
    if not isinstance(error, Mapping):
        return f"status {result.get('status')}: {error!r}"
    reason = f"{error.get('type')}: {error.get('reason')}"
    caused = error.get("caused_by")
    if isinstance(caused, Mapping):
        reason += f" (caused by {caused.get('type')}: {caused.get('reason')})"
    return reason
