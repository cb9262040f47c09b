"""Event stores. ``open_store(url)`` picks the implementation; SQLite is the default.

    open_store("sqlite:///var/lib/sekimori/sekimori.db")
    open_store("opensearch+https://search.example.lg.jp:9200", ca_certs="/etc/sekimori/ca.pem",
               basic_auth=("sekimori", password))
    open_store("elasticsearch+https://es1:9200,es2:9200?prefix=city&replicas=1", api_key=key)

Non-secret settings may also come as URL query parameters (``prefix``, ``shards``,
``replicas``, ``refresh_interval``, ``retention_days``, ``ca_certs``, ``request_timeout``);
secrets (``api_key``, ``basic_auth``) only as keyword options, so they stay out of
command lines and logs. See docs/stores.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit

from agents.errors import ConfigError
from collector.store.base import Store

SCHEMES: Final = ("sqlite", "opensearch+https", "opensearch+http", "elasticsearch+https",
                  "elasticsearch+http")  # fmt: skip
_LAYOUT_KEYS: Final = {"prefix": str, "shards": int, "replicas": int, "refresh_interval": str,
                       "retention_days": int}  # fmt: skip
_CONNECTION_KEYS: Final = {"ca_certs": str, "client_cert": str, "client_key": str,
                           "request_timeout": float, "verify_certs": bool, "insecure": bool,
                           "api_key": str, "basic_auth": tuple}  # fmt: skip
_SECRET_KEYS: Final = frozenset({"api_key", "basic_auth"})


def _coerce(key: str, kind: type, value: Any) -> Any:
    if kind is bool and isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    try:
        return kind(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"store option {key}={value!r} is not a valid {kind.__name__}") from exc


def open_store(url: str, **options: Any) -> Store:
    """Open the store a URL names (see the module docstring for the forms)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            f"unknown store URL {url!r}",
            remedy="use sqlite:///path/to/sekimori.db, opensearch+https://host:9200 or "
            "elasticsearch+https://host:9200",
        )
    if scheme == "sqlite":
        from collector.store.sqlite import SqliteStore

        if options:
            raise ConfigError(f"the SQLite store takes no options (got {sorted(options)})")
        path = unquote(parts.path)
        if not path or path == "/":
            raise ConfigError(f"no file in store URL {url!r}", remedy="sqlite:///abs/path.db")
        return SqliteStore(Path(path) if path != "/:memory:" else ":memory:")
    return _open_search(scheme, parts.netloc, parts.query, options, url)


def _open_search(scheme: str, netloc: str, query: str, options: dict[str, Any], url: str) -> Store:
    from collector.store.search_bulk import RetryPolicy
    from collector.store.search_mapping import IndexLayout
    from collector.store.search_transport import ConnectionOptions

    engine, protocol = scheme.split("+")
    settings: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key in _SECRET_KEYS:
            raise ConfigError(f"pass {key} as an option, not in the store URL (it would be logged)")
        settings[key] = value
    settings.update(options)
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, password = userinfo.partition(":")
        settings.setdefault("basic_auth", (unquote(user), unquote(password)))
    hosts = tuple(f"{protocol}://{host}" for host in netloc.split(",") if host)
    if not hosts:
        raise ConfigError(f"no host in store URL {url!r}")
    layout_args: dict[str, Any] = {}
    connection_args: dict[str, Any] = {}
    retry = settings.pop("retry", None)
    for key, value in settings.items():
        if key in _LAYOUT_KEYS:
            layout_args[key] = _coerce(key, _LAYOUT_KEYS[key], value)
        elif key in _CONNECTION_KEYS:
            connection_args[key] = _coerce(key, _CONNECTION_KEYS[key], value)
        else:
            known = sorted([*_LAYOUT_KEYS, *_CONNECTION_KEYS, "retry"])
            raise ConfigError(f"unknown store option {key!r}", remedy=f"known: {', '.join(known)}")
    connection = ConnectionOptions(hosts=hosts, **connection_args)
    if not connection.verify_certs and not connection.insecure:
        raise ConfigError(
            "verify_certs=False turns off TLS verification",
            remedy="give the cluster's CA with ca_certs=PATH (or insecure=True for a lab)",
        )
    layout = IndexLayout(**layout_args)
    policy = retry if isinstance(retry, RetryPolicy) else RetryPolicy()
    if engine == "opensearch":
        from collector.store.opensearch import OpenSearchStore

        return OpenSearchStore(connection, layout, policy)
    from collector.store.elasticsearch import ElasticsearchStore

    return ElasticsearchStore(connection, layout, policy)


__all__ = ["Store", "open_store"]
