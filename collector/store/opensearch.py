"""OpenSearch store: the shared search-engine store over the ``opensearch-py`` client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector.store.base import HuntDialect
from collector.store.search import SearchStore
from collector.store.search_bulk import RetryPolicy
from collector.store.search_mapping import IndexLayout
from collector.store.search_transport import ClientTransport, ClusterError, ConnectionOptions


class OpenSearchTransport(ClientTransport):
    def __init__(self, options: ConnectionOptions) -> None:
        from opensearchpy import OpenSearch

        headers: dict[str, str] = {}
        if options.api_key:
            headers["authorization"] = f"ApiKey {options.api_key}"
        self.client = OpenSearch(
            hosts=list(options.hosts),
            http_auth=options.basic_auth,
            headers=headers or None,
            verify_certs=options.verify_certs,
            ssl_show_warn=options.verify_certs,
            ca_certs=options.ca_certs,
            client_cert=options.client_cert,
            client_key=options.client_key,
            timeout=options.request_timeout,
            http_compress=False,
        )

    def _perform(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> Any:
        from opensearchpy import ConnectionError as OsConnectionError
        from opensearchpy import TransportError

        try:
            return self.client.transport.perform_request(
                method, path, params=dict(params or {}), body=body, headers=headers
            )
        except OsConnectionError as exc:
            raise ClusterError(0, str(exc), ambiguous=True) from exc
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 0
            raise ClusterError(status, f"{exc.error}: {exc.info}"[:2000]) from exc


class OpenSearchStore(SearchStore):
    """Events, alerts, triage records and dead letters in an OpenSearch cluster."""

    hunt_dialect: HuntDialect = "opensearch"

    def __init__(
        self,
        options: ConnectionOptions,
        layout: IndexLayout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(OpenSearchTransport(options), layout, retry)
