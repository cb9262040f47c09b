"""Elasticsearch store: the shared search-engine store over the official 8.x client."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from collector.store.base import HuntDialect
from collector.store.search import SearchStore
from collector.store.search_bulk import RetryPolicy
from collector.store.search_mapping import IndexLayout
from collector.store.search_transport import ClientTransport, ClusterError, ConnectionOptions

JSON = {"accept": "application/json", "content-type": "application/json"}
NDJSON = {"accept": "application/json", "content-type": "application/x-ndjson"}


class ElasticsearchTransport(ClientTransport):
    json_headers = JSON
    ndjson_headers = NDJSON

    def __init__(self, options: ConnectionOptions) -> None:
        from elasticsearch import Elasticsearch

        tls: dict[str, Any] = {
            key: value
            for key, value in (
                ("ca_certs", options.ca_certs),
                ("client_cert", options.client_cert),
                ("client_key", options.client_key),
            )
            if value is not None
        }
        self.client = Elasticsearch(
            list(options.hosts),
            basic_auth=options.basic_auth,
            api_key=options.api_key,
            verify_certs=options.verify_certs,
            ssl_show_warn=options.verify_certs,
            request_timeout=options.request_timeout,
            **tls,
        )

    def _perform(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: bytes | None,
        headers: Mapping[str, str] | None,
    ) -> Any:
        from elastic_transport import ConnectionError as EsConnectionError
        from elastic_transport import TransportError
        from elasticsearch import ApiError

        try:
            response = self.client.perform_request(
                method, path, params=dict(params or {}), headers=headers, body=body
            )
        except ApiError as exc:
            raise ClusterError(int(exc.status_code), f"{exc.message}: {exc.body}"[:2000]) from exc
        except EsConnectionError as exc:
            raise ClusterError(0, str(exc), ambiguous=True) from exc
        except TransportError as exc:
            raise ClusterError(0, str(exc), ambiguous=True) from exc
        return response.body


class ElasticsearchStore(SearchStore):
    """Events, alerts, triage records and dead letters in an Elasticsearch cluster."""

    hunt_dialect: HuntDialect = "elasticsearch"

    def __init__(
        self,
        options: ConnectionOptions,
        layout: IndexLayout | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        super().__init__(ElasticsearchTransport(options), layout, retry)
