"""Logsource routing: which ``sekimori.kind`` values a Sigma rule's logsource applies to.

The engine indexes rules by event kind, so each event is only tested against rules that can
apply to it. A logsource sekimori never produces (Windows, macOS, a service we do not collect)
yields a :class:`Route` with no kinds and a reason, which the loader reports as a skipped rule
rather than dropping silently.

Network-sensor events (the scapy sensor on a router, :mod:`agents.sources`) have kinds of their
own: Sigma's ``category: dns`` routes to ``dns`` events and sekimori's ``category:
network_flow`` to ``network_flow`` records (one per finished or long-running flow, both
directions counted). Flows are not ``network_connection`` events: those come from an endpoint
agent with the process attached, and rules written for them stay on them.

Windows logsources (``product: windows``, and ``category: antivirus``) route to
(channel, EventID) keys instead of kinds (:mod:`detections.windows`): Windows events carry no
``sekimori.kind`` and are matched on their ``Channel`` and ``EventID``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sigma.rule import SigmaLogSource

from detections.windows import (
    ANY_CHANNEL,
    CATEGORY_EVENTS,
    SERVICE_CHANNELS,
    UNPRODUCED_CATEGORIES,
)

# (lower-case channel or "*", EventID or None for any)
WindowsKey = tuple[str, int | None]


@dataclass(frozen=True, slots=True, kw_only=True)
class LogsourceRoute:
    """Sigma ``category`` (+ allowed ``product`` values) -> sekimori event kinds."""

    category: str
    kinds: frozenset[str]
    products: frozenset[str | None] = frozenset({None, "linux"})


@dataclass(frozen=True, slots=True)
class Route:
    kinds: frozenset[str]
    reason: str | None = None  # why nothing is routed (only set when nothing is routed)
    windows: frozenset[WindowsKey] = frozenset()

    @property
    def supported(self) -> bool:
        return bool(self.kinds or self.windows)


NETWORK_PRODUCTS: Final[frozenset[str | None]] = frozenset({None, "linux", "sekimori"})

LINUX_ROUTES: Final[tuple[LogsourceRoute, ...]] = (
    LogsourceRoute(category="process_creation", kinds=frozenset({"process_start"})),
    LogsourceRoute(category="process_termination", kinds=frozenset({"process_end"})),
    LogsourceRoute(
        category="network_connection",
        kinds=frozenset({"network_connection"}),
        products=NETWORK_PRODUCTS,
    ),
    LogsourceRoute(
        category="network_listen", kinds=frozenset({"network_listen"}), products=NETWORK_PRODUCTS
    ),
    LogsourceRoute(category="dns", kinds=frozenset({"dns"}), products=NETWORK_PRODUCTS),
    LogsourceRoute(
        category="network_flow", kinds=frozenset({"network_flow"}), products=NETWORK_PRODUCTS
    ),
    LogsourceRoute(
        category="sekimori_telemetry",
        kinds=frozenset({"telemetry_gap", "heartbeat"}),
        products=frozenset({None, "sekimori"}),
    ),
)


class LogsourceRouter:
    """Maps a rule's logsource to the event kinds it is evaluated on."""

    def __init__(self, routes: Sequence[LogsourceRoute] = LINUX_ROUTES) -> None:
        self._routes = tuple(routes)
        self._categories = frozenset(route.category for route in self._routes)

    @property
    def categories(self) -> frozenset[str]:
        return self._categories

    def route(self, logsource: SigmaLogSource) -> Route:
        category, product, service = logsource.category, logsource.product, logsource.service
        if product == "windows" or (product is None and category == "antivirus"):
            return windows_route(category, service)
        if service is not None:
            return Route(
                frozenset(),
                f"service {service!r} is not collected by sekimori agents "
                f"(routed categories: {', '.join(sorted(self._categories))})",
            )
        if category is None:
            return Route(
                frozenset(),
                f"no category (product {product!r}); sekimori routes rules by category",
            )
        kinds: set[str] = set()
        products_seen: set[str | None] = set()
        for route in self._routes:
            if route.category != category:
                continue
            products_seen |= route.products
            if product in route.products:
                kinds |= route.kinds
        if kinds:
            return Route(frozenset(kinds))
        if products_seen:
            accepted = ", ".join(sorted(str(p) for p in products_seen if p is not None))
            return Route(
                frozenset(),
                f"product {product!r} for category {category!r} is not produced by sekimori "
                f"agents (accepted products: {accepted}, or none)",
            )
        return Route(
            frozenset(),
            f"category {category!r} is not produced by sekimori agents "
            f"(routed categories: {', '.join(sorted(self._categories))})",
        )


def windows_route(category: str | None, service: str | None) -> Route:
    """A Windows logsource -> the (channel, EventID) keys its rules are evaluated on."""
    keys: set[WindowsKey] | None = None
    if category is not None:
        if category in UNPRODUCED_CATEGORIES:
            return Route(
                frozenset(),
                f"category {category!r} is produced only by ETW providers sekimori does not "
                "read (no Sysmon/Security event carries it)",
            )
        if category not in CATEGORY_EVENTS:
            return Route(frozenset(), f"Windows category {category!r} has no known event source")
        keys = set(CATEGORY_EVENTS[category])
    if service is not None:
        channels = SERVICE_CHANNELS.get(service)
        if channels is None:
            return Route(frozenset(), f"Windows service {service!r} has no known event channel")
        if keys is None:
            keys = {(channel, None) for channel in channels}
        else:  # both given: the category's events, restricted to the service's channels
            keys = {key for key in keys if key[0] in channels}
    if keys is None:
        keys = {(ANY_CHANNEL, None)}
    if not keys:
        return Route(frozenset(), f"category {category!r} is not logged by service {service!r}")
    return Route(frozenset(), None, frozenset(keys))
